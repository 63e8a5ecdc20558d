/* A trace decoder running ahead of the replay on a second thread: records
 * are decoded in batches (stream events and nodes in a compact form, the
 * rare PROCESS, THREAD and MODULE records whole with their strings), so
 * decompression and decoding overlap the replay on another CPU. A trace
 * that fits in one batch is decoded on the caller's thread. Memory is a
 * few fixed batches, whatever the trace's length. */
#ifndef ANA_FEED_H
#define ANA_FEED_H

#include <stdint.h>

#include "tf_dec.h"

struct ana_feed;

/* A decoded record in compact form (48 bytes). The replay queues stream
 * events in this form. */
struct ana_frec {
	uint64_t seq;    /* seq (stream records); TICK: watermark */
	uint64_t off;    /* byte offset in the decompressed stream */
	uint64_t size;   /* ALLOC: bytes; NODE: address; TICK, END: time_ns;
			  * CHUNK: length */
	uint64_t addr;   /* ALLOC, FREE: block; TICK: rss_bytes; END: n_events */
	uint32_t node;   /* ALLOC: leaf node; NODE, UNLOAD: id; CHUNK: stream of
			  * the payload; whole records: internal */
	uint32_t stream; /* stream id (stream records) */
	uint32_t parent; /* NODE: parent id */
	uint8_t tag;     /* enum tf_tag */
	uint8_t kind;    /* ALLOC, FREE: enum tf_kind */
	uint8_t whole;   /* PROCESS, THREAD, MODULE and unknown tags: only
			  * ana_feed_record() gives the fields */
};

/* Start reading dec (borrowed; not to be used by the caller until
 * ana_feed_free()). Returns 0 or -ENOMEM. */
int ana_feed_new(struct ana_feed **out, struct tf_dec *dec);

/* The next record: 1 with *rec set (valid until the next call), 0 at the
 * end, or the decoder's negative code as tf_dec_next() returns it (then
 * tf_dec_errmsg(dec) and ana_feed_file_offset() describe it). */
int ana_feed_next(struct ana_feed *f, const struct ana_frec **rec);

/* The record rec (the last one ana_feed_next() gave) in the decoder's form:
 * the fields of its tag are set, the rest of the union is unspecified.
 * Valid until the next ana_feed_next(). */
const struct tf_record *ana_feed_record(struct ana_feed *f, const struct ana_frec *rec);

/* tf_dec_file_offset() at the moment the decoder stopped (the end or an
 * error); valid once ana_feed_next() returned <= 0. */
uint64_t ana_feed_file_offset(const struct ana_feed *f);

/* File bytes read by the decoder up to the end of the batch the replay is
 * reading now (for a progress display; 0 before the first record). */
uint64_t ana_feed_progress(const struct ana_feed *f);

/* Stop the decoding thread and free f; NULL is allowed. */
void ana_feed_free(struct ana_feed *f);

#endif
