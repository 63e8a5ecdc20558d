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
	return 0;
}
