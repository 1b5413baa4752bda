/*
 * One vhostmgmt command from its words: the subcommand, then its options and
 * device in any order.  Both syntaxes parse the same way: vfe's ("vf -a BDF
 * -v SOCK") and the peer CLI's ("vf --add -v SOCK BDF", short BDFs).  What each
 * subcommand accepts is data (the tables in mgmt_cmd.c); this file only reads
 * words and checks them against it.
 *
 * Ownership: a parsed mgmt_cmd borrows the strings of the words it was parsed
 * from (socket_file, uuid); dev is its own normalised copy.
 */
#ifndef VHOSTMGMT_CMD_H
#define VHOSTMGMT_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "tools/vhostmgmt/mgmt_bdf.h"

enum mgmt_op { MGMT_OP_NONE, MGMT_OP_ADD, MGMT_OP_REMOVE, MGMT_OP_LIST, MGMT_OP_INFO, MGMT_OP_DEBUG, MGMT_OP_RECLAIM,
               MGMT_OP_COUNT };

#define MGMT_SOCKET_MAX 107   /* bytes of a vhost-user socket path (sun_path less its NUL) */
#define MGMT_UUID_MAX 63      /* bytes of a VM id (what the daemon keeps) */
#define MGMT_TEST_OP_MAX 6    /* vf -d -o: 1 running .. 6 get lm status */

struct mgmt_verb {
    const char *name;       /* the word on the command line */
    const char *method;     /* the RPC method it calls */
    bool peer;              /* part of the peer's TCP interface (--tcp) */
    const char *usage;      /* one line of synopsis after the name */
    const char *help;       /* what it does and its options, for NAME -h */
    const struct mgmt_opt *opts;
    unsigned need_op;       /* 1: exactly one operation option is required */
    unsigned dev_need;      /* operations (bit 1 << op) that need a device */
    unsigned dev_may;       /* operations that take one (need implies may) */
};

struct mgmt_cmd {
    const struct mgmt_verb *verb;
    bool help;                    /* -h/--help: print verb's help, nothing else */
    enum mgmt_op op;
    char dev[MGMT_BDF_LEN];       /* normalised, "" when none */
    const char *socket_file;      /* vf -a -v; NULL: the daemon's default */
    const char *uuid;             /* vf -a -u; NULL: none */
    bool direct;                  /* vf -a --direct (vfe only) */
    bool force;                   /* bind --force */
    int test_operation;           /* vf -d -o, 1..MGMT_TEST_OP_MAX */
    int size_mode;                /* vf -d -b: 1 bit, 2 byte (the default) */
    unsigned queues, msix;        /* vf -a --queues N (pairs) / --msix N (vectors); 0: not given */
    bool release_msix;            /* vf -r --release-msix */
};

/* The verb named name, or NULL. */
const struct mgmt_verb *mgmt_verb_find(const char *name);

/*
 * Parse argv[0] (the subcommand) and its arguments into c.  0, or -1 with a
 * one-line reason in err (unknown subcommand or option, missing argument,
 * conflicting operations, an option that does not go with the operation, a
 * bad BDF, a string too long).  With -h/--help anywhere (after no error) c->help
 * is set and nothing else is checked.
 */
int mgmt_cmd_parse(int argc, char *const *argv, struct mgmt_cmd *c, char *err, size_t err_len);

/*
 * The RPC params of c (a new reference).  peer: exactly what the peer's CLI
 * sends (its key order, "socket_file":null and "uuid":null on vf add, NULL for
 * no params at all, as for version); otherwise vfe's own (unset keys left out).
 */
json_t *mgmt_cmd_params(const struct mgmt_cmd *c, bool peer);

/* NAME -h of one verb; prog is the program's name. */
void mgmt_verb_help(const struct mgmt_verb *v, FILE *f, const char *prog);
/* Every verb, in the order of the main usage. */
extern const struct mgmt_verb mgmt_verb_table[];
extern const size_t mgmt_verb_count;

#endif
