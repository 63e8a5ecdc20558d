/* rec_log: allocation-free logging to stderr (jemalloc malloc_io.c). */
#include <errno.h>
#include <stdarg.h>

#include "cm_fmt.h"
#include "rec_log.h"
#include "rec_prim.h"

static int g_log_level = REC_LOG_ERROR;

void rec_log_set_level(int level)
{
	g_log_level = level;
}

void rec_log(int level, const char *fmt, ...)
{
	char buf[256];
	size_t n;
	va_list ap;
	int saved = errno;

	if (level > g_log_level)
		return;
	n = cm_fmt(buf, sizeof(buf) - 1, "memrec[%u]: ", rec_prim_getpid());
	va_start(ap, fmt);
	n += cm_vfmt(buf + n, sizeof(buf) - 1 - n, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	(void)rec_prim_write_all(2, buf, n);
	errno = saved;
}
