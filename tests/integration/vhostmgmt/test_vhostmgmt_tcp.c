/*
 * vhostmgmt --tcp against a fake peer daemon in this test (a thread on
 * 127.0.0.1 that answers in the peer daemon's formats): the exact request
 * bytes (the peer CLI's: json.dumps spacing, "socket_file":null, "uuid":null,
 * no params for version, no newline, one request per connection), replies
 * pretty-printed or compact, cut into pieces, with or without a newline,
 * printed as the peer's CLI prints them; exit status 1 for errno != 0, an
 * "Error" member and a JSON-RPC error; a server that hangs up, sends garbage or
 * never answers (--timeout).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/integration/vhostmgmt/mgmt_test.h"
#include "tests/lib/check.h"

/* What the fake server does with the next connections. */
enum reply_mode { REPLY, HANG_UP, NEVER };

static struct {
    pthread_mutex_t lock;
    enum reply_mode mode;
    const char *reply[4];      /* pieces sent 30 ms apart (NULL-terminated) */
    char requests[4][2048];    /* the bytes of each connection's request, in order */
    unsigned nreq;
    int lfd;
    volatile int stop;
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char addr[32];
static char out[65536], err[8192];

/* The request of one connection: read until it is one JSON value (the CLI sends no newline and keeps
 * the connection open for the answer). */
static void serve_one(int fd)
{
    char buf[2048];
    size_t got = 0;
    long end = check_now_ms() + 5000;
    while (got < sizeof(buf) - 1 && check_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        json_t *v = json_loadb(buf, got, 0, NULL);
        if (v) {
            json_decref(v);
            break;
        }
    }
    buf[got] = '\0';
    pthread_mutex_lock(&srv.lock);
    if (srv.nreq < 4)
        snprintf(srv.requests[srv.nreq], sizeof(srv.requests[0]), "%s", buf);
    srv.nreq++;
    enum reply_mode mode = srv.mode;
    const char *pieces[4];
    memcpy(pieces, srv.reply, sizeof(pieces));
    pthread_mutex_unlock(&srv.lock);
    if (mode == NEVER) {   /* hold the connection until the client gives up */
        char sink[64];
        while (!srv.stop && read(fd, sink, sizeof(sink)) > 0)
            ;
    } else if (mode == REPLY) {
        for (int i = 0; i < 4 && pieces[i]; i++) {
            if (i)
                usleep(30000);
            if (send(fd, pieces[i], strlen(pieces[i]), MSG_NOSIGNAL) < 0)
                break;
        }
    }
    close(fd);
}

static void *server(void *arg)
{
    while (!srv.stop) {
        struct pollfd p = {.fd = srv.lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept4(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            serve_one(fd);
    }
    return NULL;
}

static void expect_reply(enum reply_mode mode, const char *a, const char *b, const char *c)
{
    pthread_mutex_lock(&srv.lock);
    srv.mode = mode;
    srv.reply[0] = a;
    srv.reply[1] = b;
    srv.reply[2] = c;
    srv.reply[3] = NULL;
    srv.nreq = 0;
    memset(srv.requests, 0, sizeof(srv.requests));
    pthread_mutex_unlock(&srv.lock);
}

/* vhostmgmt --tcp ADDR args... (NULL-terminated) */
static int cli(const char *stdin_text, ...)
{
    const char *argv[24] = {mt_vhostmgmt(), "--tcp", addr};
    unsigned n = 3;
    va_list ap;
    va_start(ap, stdin_text);
    for (const char *x; (x = va_arg(ap, const char *)) && n < 23;)
        argv[n++] = x;
    va_end(ap);
    argv[n] = NULL;
    return mt_run(argv, stdin_text, out, sizeof(out), err, sizeof(err), 20000);
}

#define CLI(...) cli(NULL, __VA_ARGS__, NULL)

static void check_request(unsigned i, const char *want)
{
    pthread_mutex_lock(&srv.lock);
    CHECK(srv.nreq > i && !strcmp(srv.requests[i], want), "request %u:\n got  '%s'\n want '%s'", i, srv.requests[i],
          want);
    pthread_mutex_unlock(&srv.lock);
}

/* cJSON_Print's style, as the peer daemon sends it: tabs, no final newline. */
#define OK_PRETTY "{\n\t\"result\":\t{\n\t\t\"errno\":\t0,\n\t\t\"errstr\":\t\"Success\"\n\t},\n\t\"id\":\t1\n}"
#define OK_PRINTED "{\n  \"errno\": 0,\n  \"errstr\": \"Success\"\n}\n"

static void test_add_remove(void)
{
    /* the reply cut in the middle of a token, sent in three pieces */
    expect_reply(REPLY, "{\n\t\"result\":\t{\n\t\t\"err", "no\":\t0,\n\t\t\"errstr\":\t\"Succ", "ess\"\n\t},\n\t\"id\":\t1\n}");
    CHECK(CLI("vf", "--add", "AF:00.3") == 0 && !err[0], "vf --add: exit, stderr '%s'", err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"add\": true, \"vfdev\": "
                     "\"0000:af:00.3\", \"socket_file\": null, \"uuid\": null}}");
    CHECK(!strcmp(out, "{'add': True, 'vfdev': '0000:af:00.3', 'socket_file': None, 'uuid': None}\n" OK_PRINTED),
          "vf --add printed:\n%s", out);

    expect_reply(REPLY, OK_PRETTY, NULL, NULL);
    CHECK(CLI("vf", "-u", "6a7e1e0c-5c3c-4b8e-8a43-6ab2f0c7b7d1", "--add", "0000:af:00.3", "-v", "/tmp/vf-x") == 0,
          "vf --add -v -u: %s", err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"add\": true, \"vfdev\": "
                     "\"0000:af:00.3\", \"socket_file\": \"/tmp/vf-x\", \"uuid\": \"6a7e1e0c-5c3c-4b8e-8a43-6ab2f0c7b7d1\"}}");

    expect_reply(REPLY, "{\"result\":{\"errno\":-1014,\"errstr\":\"VF device already add\"},\"id\":1}\n", NULL, NULL);
    CHECK(CLI("vf", "-a", "af:00.3") == 1, "errno != 0 is exit 1: %s", out);
    CHECK(!strcmp(out, "{'add': True, 'vfdev': '0000:af:00.3', 'socket_file': None, 'uuid': None}\n"
                       "{\n  \"errno\": -1014,\n  \"errstr\": \"VF device already add\"\n}\n"), "printed:\n%s", out);

    expect_reply(REPLY, OK_PRETTY, NULL, NULL);
    CHECK(CLI("mgmtpf", "af:00.0", "--remove") == 0, "mgmtpf --remove: %s", err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"mgmtpf\", \"id\": 1, \"params\": {\"remove\": true, "
                     "\"dev\": \"0000:af:00.0\"}}");
    CHECK(!strcmp(out, "{'remove': True, 'dev': '0000:af:00.0'}\n" OK_PRINTED), "printed:\n%s", out);
}

static void test_info_list_version(void)
{
    expect_reply(REPLY,
                 "{\"result\":{\"device\":{\"vf\":\"0000:af:00.3\",\"probed\":true,\"msix_num\":\"3\",\"queue_num\":\"2\","
                 "\"queue_size\":\"256\",\"device_feature\":{\"value\":\"0x130000020\",\"00005\":\"VIRTIO_NET_F_MAC\"},"
                 "\"mtu\":\"1500\",\"mac\":\"02:AA:00:00:00:01\",\"vm_uuid\":\"00000000-0000-0000-0000-000000000000\","
                 "\"socket_file\":\"/tmp/vf-0000:af:00.3\",\"configured\":false},\"errno\":0,\"errstr\":\"Success\"},"
                 "\"id\":1}",
                 NULL, NULL);
    CHECK(CLI("vf", "--info", "af:00.3") == 0, "vf --info: %s", err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"info\": true, \"vfdev\": "
                     "\"0000:af:00.3\"}}");
    CHECK(!strcmp(out, "{'info': True, 'vfdev': '0000:af:00.3'}\n"
                       "{\n"
                       "  \"device\": {\n"
                       "    \"vf\": \"0000:af:00.3\",\n"
                       "    \"probed\": true,\n"
                       "    \"msix_num\": \"3\",\n"
                       "    \"queue_num\": \"2\",\n"
                       "    \"queue_size\": \"256\",\n"
                       "    \"device_feature\": {\n"
                       "      \"value\": \"0x130000020\",\n"
                       "      \"00005\": \"VIRTIO_NET_F_MAC\"\n"
                       "    },\n"
                       "    \"mtu\": \"1500\",\n"
                       "    \"mac\": \"02:AA:00:00:00:01\",\n"
                       "    \"vm_uuid\": \"00000000-0000-0000-0000-000000000000\",\n"
                       "    \"socket_file\": \"/tmp/vf-0000:af:00.3\",\n"
                       "    \"configured\": false\n"
                       "  },\n"
                       "  \"errno\": 0,\n"
                       "  \"errstr\": \"Success\"\n"
                       "}\n"), "vf --info printed:\n%s", out);

    expect_reply(REPLY, "{\"result\":{\"errno\":-1001,\"errstr\":\"PF device not found\"},\"id\":1}", NULL, NULL);
    CHECK(CLI("mgmtpf", "--list") == 1 && strstr(out, "\"errno\": -1001"), "mgmtpf --list, no PF: %s", out);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"mgmtpf\", \"id\": 1, \"params\": {\"list\": true}}");

    expect_reply(REPLY,
                 "{\"result\":{\"vfe-vhostd version\":\"22.11.0\",\"vfe-vhostd build time\":\"Dec  1 2026 10:00:00\","
                 "\"vfe-vhostd-ha version\":\"Not Known Due to HA Disconnected\",\"vfe-vhostd-ha build time\":"
                 "\"Not Known Due to HA Disconnected\",\"errno\":0,\"errstr\":\"Success\"},\"id\":1}\n",
                 NULL, NULL);
    CHECK(CLI("version") == 0, "version: %s", err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"version\", \"id\": 1}");
#define VERSION_HEAD "{\n  \"vfe-vhostd version\": \"22.11.0\",\n"
    CHECK(!strncmp(out, VERSION_HEAD, strlen(VERSION_HEAD)) && strstr(out, "\"errstr\": \"Success\"\n}\n"),
          "version printed (no echo line: no params):\n%s", out);

    /* --json: the same answer without the echo line */
    expect_reply(REPLY, OK_PRETTY, NULL, NULL);
    CHECK(cli(NULL, "--json", "vf", "-r", "af:00.3", NULL) == 0 && !strcmp(out, OK_PRINTED),
          "--tcp ADDR --json: '%s' '%s'", out, err);
    const char *argv[] = {mt_vhostmgmt(), "--json", "--tcp", addr, "vf", "-r", "af:00.3", NULL};
    CHECK(mt_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000) == 0 && !strcmp(out, OK_PRINTED),
          "--json --tcp: '%s' '%s'", out, err);
}

static void test_debug_and_errors(void)
{
    expect_reply(REPLY, "{\"result\":{\"device\":{\"vf\":\"0000:af:00.3\",\"lm_status\":\"1\"},\"Success\":"
                        "\"0000:af:00.3\"},\"id\":1}", NULL, NULL);
    CHECK(CLI("vf", "-d", "af:00.3", "-o", "6") == 0, "vf -d -o 6: %s", err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"vfdev\": \"0000:af:00.3\", "
                     "\"debug\": true, \"test_operation\": 6, \"size_mode\": 2}}");
    CHECK(strstr(out, "\"lm_status\": \"1\"") && strstr(out, "\"Success\": \"0000:af:00.3\""), "printed:\n%s", out);

    expect_reply(REPLY, "{\"result\":{\"Error\":\"Fail to find VF device\"},\"id\":1}", NULL, NULL);
    CHECK(CLI("vf", "--debug", "-o", "4", "-b", "bit", "af:00.4") == 1 && strstr(out, "\"Error\": \"Fail to find VF"),
          "an Error member is exit 1: %s", out);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"vfdev\": \"0000:af:00.4\", "
                     "\"debug\": true, \"test_operation\": 4, \"size_mode\": 1}}");

    expect_reply(REPLY, "{\"error\":{\"code\":-32601,\"message\":\"Method not found.\"},\"id\":1}", NULL, NULL);
    CHECK(CLI("vf", "-r", "af:00.3") == 1, "a JSON-RPC error is exit 1: %s", out);
    CHECK(!strcmp(out, "{'remove': True, 'vfdev': '0000:af:00.3'}\n"
                       "request:\n{\n  \"remove\": true,\n  \"vfdev\": \"0000:af:00.3\",\n  \"method\": \"vf\",\n"
                       "  \"req_id\": 1\n}\nGot JSON-RPC error response\nresponse:\n"
                       "{\n  \"code\": -32601,\n  \"message\": \"Method not found.\"\n}\n"), "printed:\n%s", out);

    expect_reply(HANG_UP, NULL, NULL, NULL);
    CHECK(CLI("version") == 1 && mt_lines(err) == 1 && strstr(err, "closed without an answer"), "hang-up: %s", err);
    expect_reply(REPLY, "hello\n", NULL, NULL);
    CHECK(CLI("version") == 1 && mt_lines(err) == 1 && strstr(err, "not JSON"), "garbage: %s", err);
    expect_reply(REPLY, "{\"id\":1}", NULL, NULL);
    CHECK(CLI("version") == 1 && mt_lines(err) == 1 && strstr(err, "malformed answer"), "no result: %s", err);
    expect_reply(NEVER, NULL, NULL, NULL);
    long t0 = check_now_ms();
    const char *argv[] = {mt_vhostmgmt(), "--timeout", "1", "--tcp", addr, "version", NULL};
    CHECK(mt_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000) == 1 && strstr(err, "no complete answer in time"),
          "never answered: %s", err);
    long took = check_now_ms() - t0;
    CHECK(took >= 900 && took < 5000, "--timeout 1 took %ld ms", took);
}

static void test_script_and_defaults(void)
{
    /* commands on stdin: one connection per request, ids counting up */
    expect_reply(REPLY, OK_PRETTY, NULL, NULL);
    CHECK(cli("mgmtpf --add af:00.0\nvf --add af:00.3 -v /tmp/s\n", NULL) == 0, "script: %s %s", out, err);
    check_request(0, "{\"jsonrpc\": \"2.0\", \"method\": \"mgmtpf\", \"id\": 1, \"params\": {\"add\": true, "
                     "\"dev\": \"0000:af:00.0\"}}");
    check_request(1, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 2, \"params\": {\"add\": true, \"vfdev\": "
                     "\"0000:af:00.3\", \"socket_file\": \"/tmp/s\", \"uuid\": null}}");
    /* --tcp=ADDR and a bare port */
    char eq[48], port[8];
    snprintf(eq, sizeof(eq), "--tcp=%s", addr);
    snprintf(port, sizeof(port), "%s", strrchr(addr, ':') + 1);
    const char *a1[] = {mt_vhostmgmt(), eq, "version", NULL};
    CHECK(mt_run(a1, NULL, out, sizeof(out), err, sizeof(err), 20000) == 0, "--tcp=ADDR: %s", err);
    const char *a2[] = {mt_vhostmgmt(), "--tcp", port, "version", NULL};
    CHECK(mt_run(a2, NULL, out, sizeof(out), err, sizeof(err), 20000) == 0, "--tcp PORT: %s", err);
    /* nobody there: one line on stderr, and no echo line either (the peer's CLI echoes once connected) */
    char nobody[32];
    snprintf(nobody, sizeof(nobody), "127.0.0.1:%d", mt_free_port());
    const char *a4[] = {mt_vhostmgmt(), "--tcp", nobody, "vf", "--add", "af:00.3", NULL};
    CHECK(mt_run(a4, NULL, out, sizeof(out), err, sizeof(err), 20000) == 1 && !out[0] && mt_lines(err) == 1 &&
              strstr(err, "cannot connect to 127.0.0.1:"), "refused: '%s' '%s'", out, err);
    /* a bare --tcp is the peer's default address */
    const char *a3[] = {mt_vhostmgmt(), "--tcp", "--timeout", "2", "version", NULL};
    int rc = mt_run(a3, NULL, out, sizeof(out), err, sizeof(err), 20000);
    CHECK(rc == 0 || (rc == 1 && strstr(err, "127.0.0.1:12190")), "bare --tcp: %d %s", rc, err);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) || listen(srv.lfd, 8) ||
        getsockname(srv.lfd, (struct sockaddr *)&a, &l)) {
        perror("listen");
        return 1;
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    pthread_t th;
    pthread_create(&th, NULL, server, NULL);
    test_add_remove();
    test_info_list_version();
    test_debug_and_errors();
    test_script_and_defaults();
    srv.stop = 1;
    pthread_join(th, NULL);
    close(srv.lfd);
    return check_result("vhostmgmt_tcp");
}
