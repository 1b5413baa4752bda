/*
 * JSON and values written the way the peer's CLI (a Python program) writes
 * them, so that scripts made for its output read ours: json.dumps with its
 * defaults (", " and ": " between items, non-ASCII as \uXXXX), with indent=2,
 * and Python's repr() of the request params it echoes before each call.
 *
 * Each function returns a malloc'd NUL-terminated string the caller frees,
 * or NULL when out of memory.  Object keys keep their order.
 */
#ifndef VHOSTMGMT_PYJSON_H
#define VHOSTMGMT_PYJSON_H

#include <jansson.h>

/* json.dumps(v): one line. */
char *mgmt_py_dumps(const json_t *v);
/* json.dumps(v, indent=2): no final newline. */
char *mgmt_py_dumps_indent(const json_t *v);
/* repr() of the value Python's json.loads would make of v ({'k': True, 'n': None}). */
char *mgmt_py_repr(const json_t *v);

#endif
