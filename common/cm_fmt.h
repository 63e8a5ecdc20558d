/* A tiny formatter that never allocates, for code that runs inside malloc
 * (the recorder's logging). Supports %s %c %d %u %x %p %zu %zd %lu %ld %llu
 * %lld %lx %llx %%. */
#ifndef CM_FMT_H
#define CM_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Format into buf (cap bytes, cap > 0), always NUL-terminated; output that
 * does not fit is cut. Returns the length written, excluding the NUL.
 * Async-signal-safe. */
size_t cm_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);
size_t cm_fmt(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
