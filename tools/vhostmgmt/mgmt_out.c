/* Output of vhostmgmt (see mgmt_out.h). */
#include "tools/vhostmgmt/mgmt_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/vhostmgmt/mgmt_pyjson.h"

static void print_obj(json_t *o, const char *indent)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (json_is_array(v) || json_is_object(v)) {
            char *t = json_dumps(v, JSON_COMPACT);
            printf("%s%-20s %s\n", indent, k, t);
            free(t);
        } else if (json_is_string(v)) {
            printf("%s%-20s %s\n", indent, k, json_string_value(v));
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY);
            printf("%s%-20s %s\n", indent, k, t);
            free(t);
        }
    }
}

void mgmt_out_result(json_t *r, bool as_json)
{
    if (as_json) {
        char *t = json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY);
        puts(t);
        free(t);
        return;
    }
    json_t *list = json_object_get(r, "devices");
    if (!list)
        list = json_object_get(r, "vfs");
    if (json_is_array(list)) {
        size_t i;
        json_t *e;
        if (json_array_size(list) == 0)
            puts("(none)");
        json_array_foreach(list, i, e) {
            print_obj(e, "");
            if (i + 1 < json_array_size(list))
                putchar('\n');
        }
        return;
    }
    print_obj(r, "");
}

struct tl_event {
    const char *what;
    double ms;
};

static int tl_cmp(const void *a, const void *b)
{
    double x = ((const struct tl_event *)a)->ms, y = ((const struct tl_event *)b)->ms;
    return x < y ? -1 : x > y;
}

/* One half of a switchover: its events in time order (the unset ones left out). */
static void print_half(const char *title, json_t *h, const char *const *keys, const char *const *labels,
                       unsigned nkeys)
{
    if (!json_is_object(h)) {
        printf("  %s: none seen\n", title);
        return;
    }
    struct tl_event ev[16 + 64];
    unsigned n = 0;
    for (unsigned i = 0; i < nkeys; i++) {
        json_t *v = json_object_get(h, keys[i]);
        if (json_is_number(v))
            ev[n++] = (struct tl_event){labels[i], json_number_value(v)};
    }
    static char ring_label[64][64];
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(h, "answered"), i, a) {
        json_int_t r = json_integer_value(json_object_get(a, "ring"));
        if (i >= 64 || r < 0 || !json_is_number(json_object_get(a, "ms")))
            continue;
        snprintf(ring_label[i], sizeof(ring_label[i]), "ring %lld GET_VRING_BASE answered", (long long)r);
        ev[n++] = (struct tl_event){ring_label[i], json_number_value(json_object_get(a, "ms"))};
    }
    qsort(ev, n, sizeof(ev[0]), tl_cmp);
    json_t *sw = json_object_get(h, "switchover_ms");
    printf("  %s, %.1f s ago: switchover ", title, json_number_value(json_object_get(h, "age_ms")) / 1000.0);
    if (json_is_number(sw))
        printf("%.3f ms\n", json_number_value(sw));
    else
        printf("not complete\n");
    for (unsigned k = 0; k < n; k++)
        printf("    %+10.3f ms  %s\n", ev[k].ms, ev[k].what);
}

static void print_migration(json_t *vf)
{
    static const char *const src_keys[] = {"first_get_vring_base_ms", "stop_begun_ms", "stopped_ms"};
    static const char *const src_labels[] = {"first GET_VRING_BASE", "device stop begun",
                                             "device stopped (frozen, state saved)"};
    static const char *const dst_keys[] = {"connected_ms", "mem_table_ms", "mem_mapped_ms", "start_begun_ms",
                                           "rings_started_ms"};
    static const char *const dst_labels[] = {"vhost-user connection accepted", "memory table received",
                                             "memory mapped", "device start begun", "rings running"};
    json_t *m = json_object_get(vf, "migration");
    printf("%s\n", json_string_value(json_object_get(vf, "vf")) ?: "?");
    print_half("source", json_object_get(m, "source"), src_keys, src_labels, 3);
    print_half("destination", json_object_get(m, "destination"), dst_keys, dst_labels, 5);
}


void mgmt_out_migration(json_t *res, bool as_json)
{
    json_t *vfs = json_object_get(res, "vfs"), *out = json_array(), *vf;
    size_t i;
    json_array_foreach(vfs, i, vf) {
        if (as_json) {
            json_array_append_new(out, json_pack("{s:O, s:O}", "vf", json_object_get(vf, "vf"), "migration",
                                                 json_object_get(vf, "migration")));
            continue;
        }
        if (i)
            putchar('\n');
        print_migration(vf);
    }
    if (as_json) {
        json_t *doc = json_pack("{s:o}", "vfs", out);
        char *t = json_dumps(doc, JSON_INDENT(2));
        puts(t);
        free(t);
        json_decref(doc);
    } else {
        json_decref(out);
        if (!json_array_size(vfs))
            puts("(none)");
    }
}

static void put_text(char *t)
{
    if (t)
        puts(t);
    free(t);
}

void mgmt_out_peer_echo(const json_t *params)
{
    put_text(mgmt_py_repr(params));
}

int mgmt_out_peer_reply(const char *method, const json_t *params, unsigned id, const json_t *reply)
{
    json_t *err = json_object_get(reply, "error"), *res = json_object_get(reply, "result");
    if (err) {
        json_t *req = params ? json_deep_copy(params) : json_object();
        json_object_set_new(req, "method", json_string(method));
        json_object_set_new(req, "req_id", json_integer(id));
        puts("request:");
        put_text(mgmt_py_dumps_indent(req));
        puts("Got JSON-RPC error response");
        puts("response:");
        put_text(mgmt_py_dumps_indent(err));
        json_decref(req);
        return 1;
    }
    put_text(mgmt_py_dumps_indent(res));
    json_t *e = json_object_get(res, "errno");
    return json_object_get(res, "Error") || (e && (!json_is_integer(e) || json_integer_value(e) != 0)) ? 1 : 0;
}
