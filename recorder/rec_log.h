/* Recorder logging: cm_fmt into a stack buffer, write(2) to stderr. Never
 * allocates; never called per event. */
#ifndef REC_LOG_H
#define REC_LOG_H

enum rec_log_level {
	REC_LOG_QUIET = 0,
	REC_LOG_ERROR = 1, /* default */
	REC_LOG_INFO = 2,
	REC_LOG_DEBUG = 3,
};

/* Set the level (from MEMREC_LOG); messages above it are dropped. */
void rec_log_set_level(int level);

/* Print one line "memrec[pid]: <message>\n" on fd 2 when level is enabled.
 * fmt takes cm_fmt's conversions only (%s %d %u %x %zu %p ...); the line is
 * cut at 256 bytes. Async-signal-safe; preserves errno. */
void rec_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
