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

/* A decoded record in compact form is a struct tf_event (40 bytes): ALLOC
 * and FREE as tf_dec_events() gives them, and for the other records, with
 * tag, off, seq and stream as in struct tf_record:
 *   NODE: node = id, addr = parent id, size = address;
 *   TICK: seq = watermark, size = time_ns, addr = rss_bytes;
 *   END: size = time_ns, addr = n_events; UNLOAD: node = id;
 *   CHUNK: node = stream of the payload, size = length;
 *   PROCESS, THREAD, MODULE, PHASE and unknown tags: kind = ANA_FREC_WHOLE,
 *   only ana_feed_record() gives their fields.
 * The replay queues stream events in this form. */
#define ANA_FREC_WHOLE 0xffu

/* Start reading dec (borrowed; not to be used by the caller until
 * ana_feed_free()). Returns 0 or -ENOMEM. */
int ana_feed_new(struct ana_feed **out, struct tf_dec *dec);

/* The next record: 1 with *rec set (valid until the next call), 0 at the
 * end, or the decoder's negative code as tf_dec_next() returns it (then
 * tf_dec_errmsg(dec) and ana_feed_file_offset() describe it). */
int ana_feed_next(struct ana_feed *f, const struct tf_event **rec);

/* The ALLOC and FREE records that come next in the batch being read, as
 * one run: returns their count (0 when the next record is another one or
 * the batch is used up: then call ana_feed_next()) with *recs set to the
 * first. They stay valid until the next call of ana_feed_next() or of this
 * function, and count as read. */
size_t ana_feed_events(struct ana_feed *f, const struct tf_event **recs);

/* The record rec (the last one ana_feed_next() gave) in the decoder's form:
 * the fields of its tag are set, the rest of the union is unspecified.
 * Valid until the next ana_feed_next(). */
const struct tf_record *ana_feed_record(struct ana_feed *f, const struct tf_event *rec);

/* tf_dec_file_offset() at the moment the decoder stopped (the end or an
 * error); valid once ana_feed_next() returned <= 0. */
uint64_t ana_feed_file_offset(const struct ana_feed *f);

/* File bytes read by the decoder up to the end of the batch the replay is
 * reading now (for a progress display; 0 before the first record). */
uint64_t ana_feed_progress(const struct ana_feed *f);

/* Stop the decoding thread and free f; NULL is allowed. */
void ana_feed_free(struct ana_feed *f);

#endif
