/* Functions we do not use (git's banned.h): unbounded copies, non-reentrant
 * time conversions, unchecked number parsing. Force-included by the
 * Makefile; each is redeclared deprecated, so a use is a warning (an error
 * with WERROR=1). Uses inside system headers are not reported. */
#ifndef CM_BANNED_H
#define CM_BANNED_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CM_BANNED __attribute__((deprecated("banned in this project: see common/banned.h")))

CM_BANNED char *strcpy(char *restrict dst, const char *restrict src);
CM_BANNED char *strcat(char *restrict dst, const char *restrict src);
CM_BANNED char *strncpy(char *restrict dst, const char *restrict src, size_t n);
CM_BANNED int sprintf(char *restrict s, const char *restrict fmt, ...);
CM_BANNED int vsprintf(char *restrict s, const char *restrict fmt, va_list ap);
CM_BANNED char *strtok(char *restrict s, const char *restrict delim);
CM_BANNED struct tm *gmtime(const time_t *t);
CM_BANNED struct tm *localtime(const time_t *t);
CM_BANNED char *ctime(const time_t *t);
CM_BANNED int atoi(const char *s);

#endif
