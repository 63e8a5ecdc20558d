/* Fuzz the trace decoder: header, zstd framing and every record. Whatever the
 * input, tf_dec must return records then 0 or a negative code, never crash,
 * hang or allocate without bound; errors must be sticky and carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"
#include "tf_dec.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tf_dec_events() (runs of cap records) mixed with tf_dec_next() must give
 * exactly what tf_dec_next() alone gives: records, end code and message. */
static void check_events(const uint8_t *data, size_t size)
{
	struct tf_dec *a = NULL, *b = NULL;
	struct tf_record ra, rb;
	struct tf_event ev[8];
	size_t cap = 1 + size % 8;
	int rca, rcb;

	CHECK(tf_dec_open_mem(&a, data, size, NULL) == 0);
	CHECK(tf_dec_open_mem(&b, data, size, NULL) == 0);
	for (;;) {
		long k = tf_dec_events(b, ev, cap);
		CHECK(k <= (long)cap);
		for (long i = 0; i < k; i++) {
			CHECK(tf_dec_next(a, &ra) == 1);
			CHECK((unsigned)ra.tag == ev[i].tag && ra.off == ev[i].off &&
			      ra.seq == ev[i].seq && ra.stream == ev[i].stream);
			if (ra.tag == TF_TAG_ALLOC)
				CHECK(ra.u.alloc.kind == ev[i].kind && ra.u.alloc.node == ev[i].node &&
				      ra.u.alloc.size == ev[i].size && ra.u.alloc.addr == ev[i].addr);
			else if (ra.tag == TF_TAG_NODE)
				CHECK(ra.u.node.id == ev[i].node && ra.u.node.parent == ev[i].addr &&
				      ra.u.node.addr == ev[i].size && ev[i].kind == 0);
			else
				CHECK(ra.tag == TF_TAG_FREE && ra.u.free.kind == ev[i].kind &&
				      ra.u.free.addr == ev[i].addr);
		}
		if (k > 0)
			continue;
		rcb = k < 0 ? (int)k : tf_dec_next(b, &rb);
		rca = tf_dec_next(a, &ra);
		CHECK(rca == rcb);
		if (rca <= 0)
			break;
		CHECK(ra.tag == rb.tag && ra.off == rb.off && ra.seq == rb.seq &&
		      ra.stream == rb.stream);
	}
	CHECK(strcmp(tf_dec_errmsg(a), tf_dec_errmsg(b)) == 0);
	tf_dec_free(a);
	tf_dec_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tf_dec *dec = NULL;
	struct tf_record rec;
	char msg[128];
	int rc;

	memset(msg, 0, sizeof(msg));
	rc = tf_dec_open_mem(&dec, data, size, msg);
	if (rc < 0) {
		CHECK(dec == NULL && msg[0] != '\0' && memchr(msg, 0, sizeof(msg)));
		return 0;
	}
	CHECK(dec && tf_dec_version(dec) == TF_VERSION);
	uint64_t n = 0, last_off = 0;
	while ((rc = tf_dec_next(dec, &rec)) > 0) {
		CHECK(rc == 1);
		CHECK(n == 0 ? rec.tag == TF_TAG_PROCESS : rec.off > last_off);
		CHECK(strcmp(tf_tag_name(rec.tag), "?") != 0);
		last_off = rec.off;
		n++;
	}
	if (rc < 0) {
		const char *m = tf_dec_errmsg(dec);
		CHECK(m[0] != '\0');
		CHECK(tf_dec_next(dec, &rec) == rc); /* sticky */
	} else {
		CHECK(n >= 2 && tf_dec_next(dec, &rec) == 0);
	}
	CHECK(tf_dec_file_offset(dec) <= size);
	tf_dec_free(dec);
	check_events(data, size);
	return 0;
}
