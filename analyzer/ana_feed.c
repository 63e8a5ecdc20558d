/* Decoding ahead of the replay (see ana_feed.h). The decoding thread fills
 * a ring of batches in order; the replay empties them in order. A batch is
 * handed over under the mutex, so each side sees the other's writes. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ana_feed.h"

#define N_BATCHES 4
#define BATCH_RECS 16384 /* compact records per batch (40 bytes each) */
#define BATCH_FULL 64   /* whole records per batch (about 900 bytes each) */

struct batch {
	struct tf_event recs[BATCH_RECS];
	size_t n;
	struct tf_record full[BATCH_FULL];
	size_t n_full;
	char *arena;        /* strings of the whole records */
	size_t arena_len, arena_cap;
	int rc;             /* the decoder's code after the last record: 1 =
			     * more to come, 0 = end, < 0 = error */
	uint64_t file_off;  /* tf_dec_file_offset() after the batch's last record */
	bool ready;         /* filled, not yet consumed */
};

struct ana_feed {
	struct tf_dec *dec;
	struct batch *batches;  /* n_b of them */
	size_t n_b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool threaded;          /* the decoding thread runs */
	bool stop;              /* ask it to stop */
	size_t fill;            /* next batch the decoder fills */
	size_t use;             /* batch the replay reads */
	size_t pos;             /* next record in it */
	bool started;           /* the first batch was filled */
	bool done;              /* the decoder returned <= 0 */
	uint64_t file_off;
	struct tf_record scratch; /* the compact record handed out */
};

/* Copy n bytes into the batch's arena; the pointer is fixed up after the
 * batch is complete (the arena may move while it grows). Returns the
 * offset, or SIZE_MAX on ENOMEM. */
static size_t arena_put(struct batch *b, const void *p, size_t n)
{
	if (b->arena_len + n > b->arena_cap) {
		size_t cap = b->arena_cap ? b->arena_cap : 4096;
		while (cap < b->arena_len + n)
			cap *= 2;
		char *a = realloc(b->arena, cap);
		if (!a)
			return SIZE_MAX;
		b->arena = a;
		b->arena_cap = cap;
	}
	size_t at = b->arena_len;
	if (n)
		memcpy(b->arena + at, p, n);
	b->arena_len += n;
	return at;
}

/* Keep a whole record: its strings go to the arena (as offsets, see
 * fix_strings()). Returns 0 or -ENOMEM. */
static int keep_whole(struct batch *b, const struct tf_record *rec)
{
	struct tf_record *w = &b->full[b->n_full];
	size_t o1 = 0, o2 = 0;

	*w = *rec;
	switch (rec->tag) {
	case TF_TAG_PROCESS:
		o1 = arena_put(b, rec->u.process.exe, rec->u.process.exe_len);
		o2 = arena_put(b, rec->u.process.cmdline, rec->u.process.cmdline_len);
		break;
	case TF_TAG_THREAD:
		o1 = arena_put(b, rec->u.thread.name, rec->u.thread.name_len);
		break;
	case TF_TAG_MODULE:
		o1 = arena_put(b, rec->u.module.path, rec->u.module.path_len);
		o2 = arena_put(b, rec->u.module.build_id, rec->u.module.build_id_len);
		break;
	case TF_TAG_PHASE:
		o1 = arena_put(b, rec->u.phase.name, rec->u.phase.name_len);
		break;
	default:
		break;
	}
	if (o1 == SIZE_MAX || o2 == SIZE_MAX)
		return -ENOMEM;
	/* Offsets stand in for the pointers until fix_strings(). */
	switch (rec->tag) {
	case TF_TAG_PROCESS:
		w->u.process.exe = (const char *)(uintptr_t)o1;
		w->u.process.cmdline = (const char *)(uintptr_t)o2;
		break;
	case TF_TAG_THREAD:
		w->u.thread.name = (const char *)(uintptr_t)o1;
		break;
	case TF_TAG_MODULE:
		w->u.module.path = (const char *)(uintptr_t)o1;
		w->u.module.build_id = (const uint8_t *)(uintptr_t)o2;
		break;
	case TF_TAG_PHASE:
		w->u.phase.name = (const char *)(uintptr_t)o1;
		break;
	default:
		break;
	}
	b->n_full++;
	return 0;
}

static void fix_strings(struct batch *b)
{
	for (size_t i = 0; i < b->n_full; i++) {
		struct tf_record *w = &b->full[i];
		switch (w->tag) {
		case TF_TAG_PROCESS:
			w->u.process.exe = b->arena + (uintptr_t)w->u.process.exe;
			w->u.process.cmdline = b->arena + (uintptr_t)w->u.process.cmdline;
			break;
		case TF_TAG_THREAD:
			w->u.thread.name = b->arena + (uintptr_t)w->u.thread.name;
			break;
		case TF_TAG_MODULE:
			w->u.module.path = b->arena + (uintptr_t)w->u.module.path;
			w->u.module.build_id =
				(const uint8_t *)b->arena + (uintptr_t)w->u.module.build_id;
			break;
		case TF_TAG_PHASE:
			w->u.phase.name = b->arena + (uintptr_t)w->u.phase.name;
			break;
		default:
			break;
		}
	}
}

/* Decode into b until it is full or the decoder stops. */
static void fill_batch(struct tf_dec *dec, struct batch *b)
{
	struct tf_record rec;
	int rc = 1;

	b->n = 0;
	b->n_full = 0;
	b->arena_len = 0;
	while (b->n < BATCH_RECS && b->n_full < BATCH_FULL) {
		/* Runs of ALLOC and FREE straight into the batch. */
		long k = tf_dec_events(dec, b->recs + b->n, BATCH_RECS - b->n);
		if (k < 0) {
			rc = (int)k;
			break;
		}
		b->n += (size_t)k;
		if (b->n == BATCH_RECS)
			break;
		rc = tf_dec_next(dec, &rec);
		if (rc <= 0)
			break;
		struct tf_event *f = &b->recs[b->n];
		f->seq = rec.seq;
		f->off = rec.off;
		f->tag = (uint8_t)rec.tag;
		f->kind = 0;
		f->stream = rec.stream;
		switch (rec.tag) {
		case TF_TAG_ALLOC:
			f->kind = rec.u.alloc.kind;
			f->node = rec.u.alloc.node;
			f->size = rec.u.alloc.size;
			f->addr = rec.u.alloc.addr;
			break;
		case TF_TAG_FREE:
			f->kind = rec.u.free.kind;
			f->addr = rec.u.free.addr;
			break;
		case TF_TAG_NODE:
			f->node = rec.u.node.id;
			f->addr = rec.u.node.parent;
			f->size = rec.u.node.addr;
			break;
		case TF_TAG_TICK:
			f->seq = rec.u.tick.watermark;
			f->size = rec.u.tick.time_ns;
			f->addr = rec.u.tick.rss_bytes;
			break;
		case TF_TAG_END:
			f->size = rec.u.end.time_ns;
			f->addr = rec.u.end.n_events;
			break;
		case TF_TAG_UNLOAD:
			f->node = rec.u.unload.id;
			break;
		case TF_TAG_CHUNK:
			f->node = rec.u.chunk.stream;
			f->size = rec.u.chunk.len;
			break;
		default:
			f->kind = ANA_FREC_WHOLE;
			f->node = (uint32_t)b->n_full;
			if (keep_whole(b, &rec) < 0) {
				rc = -ENOMEM;
				goto out;
			}
		}
		b->n++;
	}
out:
	fix_strings(b);
	b->rc = rc;
	b->file_off = tf_dec_file_offset(dec);
}

static void *decode_thread(void *arg)
{
	struct ana_feed *f = arg;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		struct batch *b = &f->batches[f->fill];
		while (b->ready && !f->stop)
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->stop)
			break;
		pthread_mutex_unlock(&f->mu);
		fill_batch(f->dec, b);
		pthread_mutex_lock(&f->mu);
		b->ready = true;
		f->fill = (f->fill + 1) % N_BATCHES;
		pthread_cond_broadcast(&f->cv);
		if (b->rc <= 0)
			break;
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int ana_feed_new(struct ana_feed **out, struct tf_dec *dec)
{
	struct ana_feed *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	/* One batch until the trace proves longer than one. */
	f->batches = calloc(1, sizeof(*f->batches));
	if (!f->batches) {
		free(f);
		return -ENOMEM;
	}
	f->n_b = 1;
	f->dec = dec;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	*out = f;
	return 0;
}

/* Make f->batches[f->use] a filled batch. */
static void next_batch(struct ana_feed *f)
{
	if (!f->started) {
		/* The first batch on this thread; a longer trace gets the
		 * decoding thread for the rest. */
		f->started = true;
		fill_batch(f->dec, &f->batches[0]);
		f->batches[0].ready = true;
		if (f->batches[0].rc <= 0)
			return;
		struct batch *nb = realloc(f->batches, N_BATCHES * sizeof(*nb));
		if (!nb)
			return; /* go on with one batch, on this thread */
		f->batches = nb;
		f->n_b = N_BATCHES;
		memset(f->batches + 1, 0, (N_BATCHES - 1) * sizeof(*nb));
		f->fill = 1;
		f->threaded = pthread_create(&f->thread, NULL, decode_thread, f) == 0;
		return;
	}
	if (!f->threaded) {
		/* Single batch (no thread): refill it here. */
		fill_batch(f->dec, &f->batches[f->use]);
		f->batches[f->use].ready = true;
		return;
	}
	pthread_mutex_lock(&f->mu);
	while (!f->batches[f->use].ready)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
}

int ana_feed_next(struct ana_feed *f, const struct tf_event **rec)
{
	struct batch *b;

	if (f->done)
		return 0;
	if (!f->started)
		next_batch(f);
	b = &f->batches[f->use];
	while (f->pos == b->n) {
		if (b->rc <= 0) {
			f->done = b->rc == 0;
			f->file_off = b->file_off;
			int rc = b->rc;
			f->pos = 0;
			b->n = 0; /* further calls return rc again */
			return rc;
		}
		/* Hand the batch back and take the next one. */
		if (f->threaded) {
			pthread_mutex_lock(&f->mu);
			b->ready = false;
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->mu);
			f->use = (f->use + 1) % N_BATCHES;
		} else {
			b->ready = false;
		}
		f->pos = 0;
		next_batch(f);
		b = &f->batches[f->use];
	}
	*rec = &b->recs[f->pos++];
	return 1;
}

size_t ana_feed_events(struct ana_feed *f, const struct tf_event **recs)
{
	if (f->done || !f->started)
		return 0;
	const struct batch *b = &f->batches[f->use];
	size_t i = f->pos, n = b->n;
	while (i < n && (b->recs[i].tag == TF_TAG_ALLOC || b->recs[i].tag == TF_TAG_FREE))
		i++;
	*recs = b->recs + f->pos;
	size_t k = i - f->pos;
	f->pos = i;
	return k;
}

const struct tf_record *ana_feed_record(struct ana_feed *f, const struct tf_event *c)
{
	if (c->kind == ANA_FREC_WHOLE && c->tag != TF_TAG_ALLOC && c->tag != TF_TAG_FREE)
		return &f->batches[f->use].full[c->node];
	struct tf_record *r = &f->scratch;
	r->tag = (enum tf_tag)c->tag;
	r->off = c->off;
	r->seq = c->seq;
	r->stream = c->stream;
	switch (c->tag) {
	case TF_TAG_ALLOC:
		r->u.alloc.kind = c->kind;
		r->u.alloc.node = c->node;
		r->u.alloc.size = c->size;
		r->u.alloc.addr = c->addr;
		break;
	case TF_TAG_FREE:
		r->u.free.kind = c->kind;
		r->u.free.addr = c->addr;
		break;
	case TF_TAG_NODE:
		r->u.node.id = c->node;
		r->u.node.parent = (uint32_t)c->addr;
		r->u.node.addr = c->size;
		break;
	case TF_TAG_TICK:
		r->seq = 0;
		r->u.tick.watermark = c->seq;
		r->u.tick.time_ns = c->size;
		r->u.tick.rss_bytes = c->addr;
		break;
	case TF_TAG_END:
		r->u.end.time_ns = c->size;
		r->u.end.n_events = c->addr;
		break;
	case TF_TAG_UNLOAD:
		r->u.unload.id = c->node;
		break;
	case TF_TAG_CHUNK:
		r->u.chunk.stream = c->node;
		r->u.chunk.len = (uint32_t)c->size;
		break;
	default:
		break;
	}
	return r;
}

uint64_t ana_feed_file_offset(const struct ana_feed *f)
{
	return f->file_off;
}

uint64_t ana_feed_progress(const struct ana_feed *f)
{
	if (!f->started)
		return 0;
	return f->batches[f->use].file_off;
}

void ana_feed_free(struct ana_feed *f)
{
	if (!f)
		return;
	if (f->threaded) {
		pthread_mutex_lock(&f->mu);
		f->stop = true;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->thread, NULL);
	}
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	for (size_t i = 0; i < f->n_b; i++)
		free(f->batches[i].arena);
	free(f->batches);
	free(f);
}
