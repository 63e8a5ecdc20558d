/* Allocation-free formatting (jemalloc malloc_io.c spirit). */
#include <stdint.h>
#include <string.h>

#include "cm_fmt.h"

struct cm_out {
	char *buf;
	size_t cap; /* bytes, including the NUL */
	size_t len;
};

static void out_ch(struct cm_out *o, char c)
{
	if (o->len + 1 < o->cap)
		o->buf[o->len++] = c;
}

static void out_u(struct cm_out *o, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		out_ch(o, tmp[--n]);
}

static void out_d(struct cm_out *o, int64_t v)
{
	if (v < 0) {
		out_ch(o, '-');
		out_u(o, (uint64_t)0 - (uint64_t)v, 10);
	} else {
		out_u(o, (uint64_t)v, 10);
	}
}

size_t cm_vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
	struct cm_out o = { buf, cap, 0 };

	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			out_ch(&o, *p);
			continue;
		}
		p++;
		int lng = 0, sz = 0;
		while (*p == 'l') {
			lng++;
			p++;
		}
		if (*p == 'z') {
			sz = 1;
			p++;
		}
		switch (*p) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			while (*s)
				out_ch(&o, *s++);
			break;
		}
		case 'c':
			out_ch(&o, (char)va_arg(ap, int));
			break;
		case 'd':
			if (sz)
				out_d(&o, (int64_t)va_arg(ap, ptrdiff_t));
			else if (lng)
				out_d(&o, lng > 1 ? va_arg(ap, long long) : va_arg(ap, long));
			else
				out_d(&o, va_arg(ap, int));
			break;
		case 'u':
		case 'x':
			if (sz)
				out_u(&o, va_arg(ap, size_t), *p == 'x' ? 16 : 10);
			else if (lng)
				out_u(&o, lng > 1 ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned long),
				      *p == 'x' ? 16 : 10);
			else
				out_u(&o, va_arg(ap, unsigned), *p == 'x' ? 16 : 10);
			break;
		case 'p':
			out_ch(&o, '0');
			out_ch(&o, 'x');
			out_u(&o, (uintptr_t)va_arg(ap, void *), 16);
			break;
		case '%':
			out_ch(&o, '%');
			break;
		case '\0':
			p--;
			break;
		default:
			out_ch(&o, '%');
			out_ch(&o, *p);
			break;
		}
	}
	if (o.cap)
		o.buf[o.len] = '\0';
	return o.len;
}

size_t cm_fmt(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	size_t n = cm_vfmt(buf, cap, fmt, ap);
	va_end(ap);
	return n;
}
