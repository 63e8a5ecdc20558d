/* Small analyzer helpers (see ana_util.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ana_util.h"

static size_t hash32(uint32_t k)
{
	uint32_t h = k * 0x9e3779b1u;

	return h ^ (h >> 15);
}

int ana_map32_get(const struct ana_map32 *m, uint32_t key, uint32_t *val)
{
	if (!m->cap || !key)
		return 0;
	for (size_t i = hash32(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			*val = m->vals[i];
			return 1;
		}
		if (!m->keys[i])
			return 0;
	}
}

static void map32_insert(uint32_t *keys, uint32_t *vals, size_t cap, uint32_t key,
			 uint32_t val, size_t *n)
{
	size_t i = hash32(key) & (cap - 1);

	while (keys[i] && keys[i] != key)
		i = (i + 1) & (cap - 1);
	if (!keys[i])
		(*n)++;
	keys[i] = key;
	vals[i] = val;
}

int ana_map32_put(struct ana_map32 *m, uint32_t key, uint32_t val)
{
	if (!key)
		return -EINVAL;
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		uint32_t *keys = calloc(cap, sizeof(*keys));
		uint32_t *vals = malloc(cap * sizeof(*vals));
		size_t n = 0;

		if (!keys || !vals) {
			free(keys);
			free(vals);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->cap; i++)
			if (m->keys[i])
				map32_insert(keys, vals, cap, m->keys[i], m->vals[i], &n);
		free(m->keys);
		free(m->vals);
		m->keys = keys;
		m->vals = vals;
		m->cap = cap;
		m->n = n;
	}
	map32_insert(m->keys, m->vals, m->cap, key, val, &m->n);
	return 0;
}

void ana_map32_release(struct ana_map32 *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static inline size_t hash64(uint64_t k, size_t cap)
{
	return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 24) & (cap - 1);
}

uint64_t *ana_map64_slot(struct ana_map64 *m, uint64_t key, int *fresh)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		uint64_t *keys = calloc(cap, sizeof(*keys));
		uint64_t *vals = malloc(cap * sizeof(*vals));

		if (!keys || !vals) {
			free(keys);
			free(vals);
			return NULL;
		}
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->keys[i])
				continue;
			size_t j = hash64(m->keys[i], cap);
			while (keys[j])
				j = (j + 1) & (cap - 1);
			keys[j] = m->keys[i];
			vals[j] = m->vals[i];
		}
		free(m->keys);
		free(m->vals);
		m->keys = keys;
		m->vals = vals;
		m->cap = cap;
	}
	size_t i = hash64(key, m->cap);
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	*fresh = !m->keys[i];
	if (*fresh) {
		m->keys[i] = key;
		m->vals[i] = 0;
		m->n++;
	}
	return &m->vals[i];
}

void ana_map64_release(struct ana_map64 *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

int ana_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int ana_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },     { "b", 0 },    { "k", 10 },   { "kb", 10 },
		{ "kib", 10 }, { "m", 20 },   { "mb", 20 },  { "mib", 20 },
		{ "g", 30 },   { "gb", 30 },  { "gib", 30 }, { "t", 40 },
		{ "tb", 40 },  { "tib", 40 },
	};
	char num[32], suf[8];
	size_t i = 0, j = 0;
	uint64_t v;

	if (!s)
		return -EINVAL;
	while (s[i] >= '0' && s[i] <= '9') {
		if (i + 1 >= sizeof(num))
			return -EINVAL;
		num[i] = s[i];
		i++;
	}
	num[i] = 0;
	for (; s[i]; i++) {
		if (j + 1 >= sizeof(suf))
			return -EINVAL;
		char c = s[i];
		suf[j++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	suf[j] = 0;
	if (ana_parse_u64(num, &v))
		return -EINVAL;
	for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
		if (strcmp(suf, units[k].suffix))
			continue;
		if (units[k].shift && v > (UINT64_MAX >> units[k].shift))
			return -EINVAL;
		*out = v << units[k].shift;
		return 0;
	}
	return -EINVAL;
}

const char *ana_human_size(char *buf, size_t cap, uint64_t bytes)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, cap, "%.2f %s", v, unit[u]);
	return buf;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

void ana_json_str(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	for (size_t i = 0; s && i < len;) {
		unsigned c = s[i];
		size_t n;

		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc((int)c, f);
			i++;
		} else if (c == '\n') {
			fputs("\\n", f);
			i++;
		} else if (c == '\t') {
			fputs("\\t", f);
			i++;
		} else if (c == '\r') {
			fputs("\\r", f);
			i++;
		} else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
			fprintf(f, "\\u%04x", c);
			i++;
		} else if ((n = utf8_len(s + i, len - i)) == 0) {
			fprintf(f, "\\u%04x", c);
			i++;
		} else {
			fwrite(s + i, 1, n, f);
			i += n;
		}
	}
	fputc('"', f);
}

const char *ana_basename(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	return slash ? slash + 1 : (path ? path : "");
}

char *ana_strndup(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (!d)
		return NULL;
	if (len)
		memcpy(d, s, len);
	d[len] = 0;
	return d;
}
