/* Error codes shared by every component: 0, a negative errno, or a negative
 * project code from the reserved range below (libbpf style). */
#ifndef CM_ERR_H
#define CM_ERR_H

#include <errno.h>

/* Project error codes, from 4000 up so they never collide with errno. */
enum cm_err {
	CM_E_FIRST = 4000,
	CM_E_CORRUPT = 4000,   /* malformed input (bad tag, bad varint, bad field) */
	CM_E_TRUNCATED = 4001, /* input ends inside a record or zstd frame */
	CM_E_VERSION = 4002,   /* unsupported trace format version */
	CM_E_LIMIT = 4003,     /* a field exceeds a documented limit */
	CM_E_MAGIC = 4004,     /* not a memrec trace (wrong magic) */
	CM_E_ZSTD = 4005,      /* zstd reported an error */
	CM_E_SQLITE = 4006,    /* SQLite reported an error */
	CM_E_USAGE = 4007,     /* bad command-line usage */
	CM_E_LAST = 4007,
};

/* Return a static, never-freed description of err (negative errno or
 * negative project code). Thread-safe; does not allocate. */
const char *cm_strerror(int err);

/* Forward a negative result to the caller (zstd FORWARD_IF_ERROR). */
#define CM_TRY(expr)                            \
	do {                                    \
		int cm_try_rc_ = (expr);        \
		if (cm_try_rc_ < 0)             \
			return cm_try_rc_;      \
	} while (0)

#endif
