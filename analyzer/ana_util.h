/* Small analyzer helpers: u32 -> u32 and u64 -> u64 hash maps, checked number and size
 * parsing, human-readable sizes and a JSON string writer. */
#ifndef ANA_UTIL_H
#define ANA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Open-addressing map from a nonzero u32 key to a u32 value. Memory grows
 * with the number of keys only (load factor <= 1/2). */
struct ana_map32 {
	uint32_t *keys; /* 0 = empty slot */
	uint32_t *vals;
	size_t cap;     /* slots, power of two (0 before the first insert) */
	size_t n;       /* keys stored */
};

/* Look key (nonzero) up. Returns 1 and sets *val when present, else 0. */
int ana_map32_get(const struct ana_map32 *m, uint32_t key, uint32_t *val);

/* Insert or replace key (nonzero) -> val. Returns 0 or -ENOMEM. */
int ana_map32_put(struct ana_map32 *m, uint32_t key, uint32_t val);

/* Free the map's arrays; the struct may be reused after. */
void ana_map32_release(struct ana_map32 *m);

/* Open-addressing map from a nonzero u64 key to a u64 value (linear probing,
 * load factor <= 1/2). Its owner may read keys[] and vals[] directly (cap
 * slots, key 0 = empty) or take them over (then zero the struct). */
struct ana_map64 {
	uint64_t *keys;
	uint64_t *vals;
	size_t cap; /* slots, power of two (0 before the first insert) */
	size_t n;   /* keys stored */
};

/* The value of key (nonzero): found, or inserted with value 0 (*fresh set
 * to 1; else 0). The pointer is valid until the next call. NULL when out
 * of memory (the map is unchanged). */
uint64_t *ana_map64_slot(struct ana_map64 *m, uint64_t key, int *fresh);

/* Free the map's arrays; the struct may be reused after. */
void ana_map64_release(struct ana_map64 *m);

/* Parse a whole decimal string into *out. Returns 0 or -EINVAL (empty,
 * trailing junk, sign, overflow). *out untouched on error. */
int ana_parse_u64(const char *s, uint64_t *out);

/* Parse a size: bytes, or a number with suffix K/M/G (also k/m/g, KB, KiB,
 * MiB, GiB...; all binary multiples of 1024). Returns 0 or -EINVAL. */
int ana_parse_size(const char *s, uint64_t *out);

/* Format bytes as "123 B", "1.50 KiB", "3.00 MiB"... into buf (cap bytes).
 * Returns buf. */
const char *ana_human_size(char *buf, size_t cap, uint64_t bytes);

/* Write s (len bytes, may contain any bytes) as a JSON string with quotes.
 * Control characters, quote and backslash are escaped, and so are '<', '>'
 * and '&' (as \u003c...: the JSON can sit inside an HTML <script>); bytes
 * that are not valid UTF-8 are written as \u00XX (their Latin-1 reading).
 * NULL writes "". */
void ana_json_str(FILE *f, const char *s, size_t len);

/* s (NUL-terminated; NULL writes "") as a JSON string: ana_json_str(). */
static inline void ana_json_cstr(FILE *f, const char *s)
{
	ana_json_str(f, s, s ? __builtin_strlen(s) : 0);
}

/* ns in ms (for output). */
static inline double ana_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* Basename of path (pointer into path). */
const char *ana_basename(const char *path);

/* Duplicate len bytes of s as a NUL-terminated string. NULL on ENOMEM. */
char *ana_strndup(const char *s, size_t len);

#endif
