/* LEB128 varints and zigzag (the protobuf encoding: unsigned base-128, low
 * group first, high bit = more). Encoder writes at most CM_VARINT_MAX bytes. */
#ifndef CM_VARINT_H
#define CM_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define CM_VARINT_MAX 10 /* bytes for a 64-bit value */

/* Write v as LEB128 at p (room for CM_VARINT_MAX bytes); return bytes written. */
static inline size_t cm_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Read a LEB128 value from [p, end) into *v. Returns bytes consumed, 0 when
 * the input ends inside the varint, or -1 when it is overlong (more than 10
 * bytes, or bits beyond 64). *v is written only on success. */
static inline int cm_varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	int i;

	for (i = 0; i < CM_VARINT_MAX; i++) {
		if (p + i >= end)
			return 0;
		uint8_t b = p[i];
		if (i == 9 && b > 1)
			return -1;
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return -1;
}

/* Zigzag maps signed to unsigned so small magnitudes stay small. */
static inline uint64_t cm_zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t cm_unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#endif
