/* Offline experiment for the trace encoding (issue 4; not part of the product,
 * not built by make): decode a trace, re-encode its stream records with
 * candidate encodings and zstd settings, print bytes per event.
 *
 *   cc -O2 -Iformats -Icommon -o reencode tools/bench/reencode.c formats/tf_dec.c \
 *      formats/tf_enc.c common/cm_err.c common/cm_fmt.c -lzstd
 *   reencode TRACE VARIANT...
 *
 * A variant is a comma list of key=value: l (zstd level, 3), w (window log,
 * 22), ldm; real=1 (the real encoder, tf_enc_alloc_c/tf_enc_free_c: the
 * result is decoded back and compared record by record, with the decode
 * time); or the prototype encoder's features: fold (flags in the tag), ref
 * (FREE back-reference window) and refh (its hash bits), rf (recent frees)
 * and rfall, cls (class stack depth), clsk (search depth), clsrm, bump,
 * intern and ih, and for measurements only (not decodable) z (bit mask of
 * fields written as 0), noaddr, noseq. Environment: STATS=1 (form counts),
 * ENCBENCH=1 (encoder CPU ns per event, plain against cached), DUMPX=1 and
 * DUMPA=hexaddr (debug dumps). */
#define ZSTD_STATIC_LINKING_ONLY
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "cm_varint.h"
#include "tf_dec.h"
#include "tf_enc.h"

struct rec {
	uint8_t tag;
	uint32_t stream;
	uint64_t seq;
	uint64_t a, b, c;  /* alloc: node size addr; free: addr; node: id parent addr ... */
	uint8_t kind;
	uint8_t *blob;     /* thread/module: v1 bytes after seq */
	uint32_t blob_len;
};

static struct rec *R;
static size_t nr, capr;
static uint64_t n_events;

static void push(struct rec *r)
{
	if (nr == capr) {
		capr = capr ? capr * 2 : 1 << 20;
		R = realloc(R, capr * sizeof(*R));
	}
	R[nr++] = *r;
}

struct P {
	int level, wlog, ldm, fold, ref_r, ref_h, rf_k, bump, intern, intern_h, cls, clsk, clsrm, rfall, noaddr, noseq, z, real;
};

#define MAXS 4096
struct es {
	uint64_t prev_seq, prev_addr, prev_node_addr, prev_alloc_end;
	uint32_t prev_node_id;
	uint32_t n_alloc;
	uint64_t real_st[8]; struct tf_enc_cache *real_c;
	uint64_t *hkey; uint32_t *hno; uint32_t *hsz;
	uint64_t rf[64]; int nrf;
	uint64_t cls_top[128][64]; uint8_t cls_n[128];
	uint32_t *ikey_node; uint64_t *ikey_size; uint32_t *iid; uint32_t n_ids;
	/* MTF of the last pair ids */
};
static struct es S[MAXS];
static uint64_t tagc[256], tagb[256];
static uint64_t st_fhit, st_fmiss, st_acls, st_arf, st_abump, st_aexp, st_ihit, st_imiss, st_a0;

static size_t put(uint8_t *p, uint64_t v) { return cm_varint_put(p, v); }

static uint64_t chunk_sz(uint64_t size)
{
	uint64_t c = (size + 8 + 15) & ~(uint64_t)15;
	return c < 32 ? 32 : c;
}

static unsigned cls_of(uint64_t size)
{
	uint64_t c = chunk_sz(size) >> 4;
	return c < 128 ? (unsigned)c : 127;
}

static uint32_t hash64(uint64_t a, int bits)
{
	return (uint32_t)((a * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

static int log2i(int x) { int b = 0; while ((1 << b) < x) b++; return b; }

/* encode one stream record with params p; return bytes */
static size_t enc(const struct P *p, struct es *s, const struct rec *r, uint8_t *o)
{
	size_t n = 0;
	uint64_t ds;

	switch (r->tag) {
	case TF_TAG_THREAD:
	case TF_TAG_MODULE:
	case TF_TAG_UNLOAD:
		o[n++] = r->tag;
		n += put(o + n, r->seq - s->prev_seq);
		s->prev_seq = r->seq;
		memcpy(o + n, r->blob, r->blob_len);
		return n + r->blob_len;
	case TF_TAG_NODE:
		o[n++] = r->tag;
		n += put(o + n, r->a - s->prev_node_id);
		n += put(o + n, r->a - r->b);
		n += put(o + n, cm_zigzag((int64_t)(r->c - s->prev_node_addr)));
		s->prev_node_id = (uint32_t)r->a;
		s->prev_node_addr = r->c;
		return n;
	}
	if (p->real) {
		struct tf_stream_state *ts = (struct tf_stream_state *)s->real_st;
		ts->prev_seq = s->prev_seq;
		s->prev_seq = r->seq;
		size_t nn;
		if (r->tag == TF_TAG_FREE)
			nn = tf_enc_free_c(o, ts, s->real_c, r->seq, (enum tf_kind)r->kind, r->c);
		else
			nn = tf_enc_alloc_c(o, ts, s->real_c, r->seq, (enum tf_kind)r->kind, (uint32_t)r->a, r->b, r->c);
		tagc[o[0]]++; tagb[o[0]] += nn;
		return nn;
	}
	ds = r->seq - s->prev_seq;
	s->prev_seq = r->seq;
	static uint64_t dumpa; if (!dumpa && getenv("DUMPA")) dumpa = strtoull(getenv("DUMPA"), 0, 16);
	if (dumpa && r->c == dumpa) { uint32_t h = hash64(r->c, p->ref_h); printf("A %s seq %llu k%u sz %llu node %llu nalloc %u slot %llx/%u\n", r->tag == TF_TAG_FREE ? "free " : "alloc", (unsigned long long)r->seq, r->kind, (unsigned long long)r->b, (unsigned long long)r->a, s->n_alloc, (unsigned long long)s->hkey[h], s->hno[h]); }
	if (!p->fold && !p->ref_r) {
		o[n++] = r->tag;
		n += put(o + n, ds);
		o[n++] = r->kind;
		if (r->tag == TF_TAG_ALLOC) {
			n += put(o + n, r->a);
			n += put(o + n, r->b);
		}
		n += put(o + n, cm_zigzag((int64_t)(r->c - s->prev_addr)));
		s->prev_addr = r->c;
		return n;
	}
	uint8_t tag = 0;
	size_t tpos = n++;
	if (ds == 1 || p->noseq)
		tag |= 1;
	else
		n += put(o + n, (p->z & 32) ? 0 : ds);
	if (r->tag == TF_TAG_FREE) {
		tag |= 0x80; /* free */
		if (r->kind == TF_KIND_REALLOC)
			tag |= 2;
		int hit = 0;
		if (p->ref_r) {
			uint32_t h = hash64(r->c, p->ref_h);
			if (s->hkey[h] == r->c && s->n_alloc - s->hno[h] <= (uint32_t)p->ref_r) {
				uint32_t d = s->n_alloc - s->hno[h];
				n += put(o + n, (p->z & 4) ? 0 : d - 1);
				hit = 1; st_fhit++;
				tag |= 4;
				if (p->cls) {
					unsigned c = cls_of(s->hsz[h]);
					if (s->cls_n[c] < p->cls) s->cls_n[c]++;
					memmove(s->cls_top[c] + 1, s->cls_top[c], (size_t)(s->cls_n[c] - 1) * 8);
					s->cls_top[c][0] = r->c;
				}
			}
		}
		if (!hit) {
			st_fmiss++;
			n += put(o + n, (p->z & 16) ? 0 : cm_zigzag((int64_t)(r->c - s->prev_addr)));
			s->prev_addr = r->c;
		}
		if (p->rf_k && (hit || p->rfall)) {
			if (s->nrf < p->rf_k)
				s->nrf++;
			memmove(s->rf + 1, s->rf, (size_t)(s->nrf - 1) * 8);
			s->rf[0] = r->c;
		}
		o[tpos] = tag;
		return n;
	}
	/* alloc */
	if (r->kind != TF_KIND_MALLOC) {
		tag |= 2;
		o[n++] = r->kind;
	}
	/* node,size */
	if (p->intern) {
		uint32_t h = hash64(r->a * 0x100000001b3ull ^ r->b, p->intern_h);
		if (s->ikey_node[h] == r->a && s->ikey_size[h] == r->b && s->iid[h]) {
			n += put(o + n, (p->z & 8) ? 0 : s->iid[h] - 1);
			tag |= 8; st_ihit++;
		} else {
			s->ikey_node[h] = (uint32_t)r->a;
			s->ikey_size[h] = r->b;
			s->iid[h] = ++s->n_ids; st_imiss++;
			n += put(o + n, r->a);
			n += put(o + n, r->b);
		}
	} else {
		n += put(o + n, r->a);
		n += put(o + n, r->b);
	}
	/* address */
	uint64_t addr = r->c;
	int done = 0;
	if (p->cls && !done) {
		unsigned c = cls_of(r->b);
		if (getenv("DUMPA") && addr == strtoull(getenv("DUMPA"), 0, 16)) { printf("  cls %u n %u:", c, s->cls_n[c]); for (int j = 0; j < s->cls_n[c]; j++) printf(" %llx", (unsigned long long)s->cls_top[c][j]); printf("\n"); }
		for (int i = 0; i < s->cls_n[c] && i < p->clsk; i++)
			if (addr && s->cls_top[c][i] == addr) {
				tag |= 0x30; st_acls++; /* mode 3: class top */
				if (p->clsk > 1) n += put(o + n, (p->z & 2) ? 0 : (uint64_t)i);
				memmove(s->cls_top[c] + i, s->cls_top[c] + i + 1, (size_t)(s->cls_n[c] - i - 1) * 8);
				s->cls_n[c]--;
				done = 1;
				break;
			}
		if (!done && p->clsrm)
			for (int i = 0; i < s->cls_n[c]; i++)
				if (s->cls_top[c][i] == addr) {
					memmove(s->cls_top[c] + i, s->cls_top[c] + i + 1, (size_t)(s->cls_n[c] - i - 1) * 8);
					s->cls_n[c]--;
					break;
				}
	}
	if (p->rf_k && !done) {
		for (int i = 0; i < s->nrf; i++)
			if (s->rf[i] == addr) {
				tag |= 0x10; st_arf++; /* mode 1: recent free i */
				n += put(o + n, (uint64_t)i);
				memmove(s->rf + i, s->rf + i + 1, (size_t)(s->nrf - i - 1) * 8);
				s->nrf--;
				done = 1;
				break;
			}
	}
	if (p->bump && !done && addr == s->prev_alloc_end) {
		tag |= 0x20; st_abump++; /* mode 2: bump */
		done = 1;
	}
	if (!done && getenv("DUMPX") && st_aexp > 300000 && st_aexp < 300080) printf("X k%u sz %llu addr %llx bumpd %lld prevd %lld\n", r->kind, (unsigned long long)r->b, (unsigned long long)addr, (long long)(addr - s->prev_alloc_end), (long long)(addr-s->prev_addr));
	if (!done) {
		st_aexp++; if (!addr) st_a0++;
		uint64_t base = p->bump ? s->prev_alloc_end : s->prev_addr;
		n += put(o + n, (p->noaddr || (p->z & 1)) ? 0 : cm_zigzag((int64_t)(addr - base)));
		s->prev_addr = addr;
	}
	if (addr)
		s->prev_alloc_end = addr + chunk_sz(r->b);
	if (p->ref_r) {
		s->n_alloc++;
		uint32_t h = hash64(addr, p->ref_h);
		s->hkey[h] = addr;
		s->hno[h] = s->n_alloc;
		s->hsz[h] = (uint32_t)r->b;
	}
	o[tpos] = tag | 0x40;
	return n;
}

static void run(const struct P *p, const char *name)
{
	size_t rawcap = 64 << 20;
	uint8_t *raw = malloc(rawcap), *cout = malloc(ZSTD_compressBound(rawcap));
	uint8_t *payload = malloc(64 << 20);
	size_t rawlen = 0, plen = 0, total_raw = 0, total_z = 0;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint64_t last_flush = 0;
	int open = -1;
	uint8_t *zbuf = NULL; size_t zlen = 0, zcap = 0;

	memset(S, 0, sizeof(S));
	if (p->real) { zcap = 1 << 20; zbuf = malloc(zcap); uint8_t h[16]; tf_enc_header(h, 0); memcpy(zbuf, h, 16); zlen = 16; }
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, p->level);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, p->wlog);
	if (p->ldm)
		ZSTD_CCtx_setParameter(cc, ZSTD_c_enableLongDistanceMatching, 1);

#define ZOUT(mode) do { \
		ZSTD_inBuffer in = { raw, rawlen, 0 }; \
		size_t rem; \
		do { \
			ZSTD_outBuffer out = { cout, ZSTD_compressBound(rawcap), 0 }; \
			rem = ZSTD_compressStream2(cc, &out, &in, mode); \
			if (ZSTD_isError(rem)) { fprintf(stderr, "zstd %s\n", ZSTD_getErrorName(rem)); exit(1); } \
			if (p->real) { if (zlen + out.pos > zcap) { zcap = (zlen + out.pos) * 2; zbuf = realloc(zbuf, zcap); } memcpy(zbuf + zlen, cout, out.pos); zlen += out.pos; } \
			total_z += out.pos; \
		} while (in.pos < in.size || (mode != ZSTD_e_continue && rem)); \
		total_raw += rawlen; rawlen = 0; \
	} while (0)

	for (size_t i = 0; i <= nr; i++) {
		struct rec *r = i < nr ? &R[i] : NULL;
		int is_stream = r && r->tag >= 0x10;
		if (open >= 0 && (!r || !is_stream || (int)r->stream != open || plen > (900u << 10))) {
			rawlen += tf_enc_chunk_head(raw + rawlen, (uint32_t)open, (uint32_t)plen);
			memcpy(raw + rawlen, payload, plen);
			rawlen += plen;
			plen = 0;
			open = -1;
		}
		if (!r)
			break;
		if (is_stream) {
			struct es *s = &S[r->stream % MAXS];
			if (p->ref_r && !s->hkey) {
				s->hkey = calloc((size_t)1 << p->ref_h, 8);
				s->hno = calloc((size_t)1 << p->ref_h, 4);
				s->hsz = calloc((size_t)1 << p->ref_h, 4);
			}
			if (p->real && !s->real_c) {
				s->real_c = calloc(1, sizeof(*s->real_c));
				tf_enc_cache_reset(s->real_c);
			}
			if (p->intern && !s->iid) {
				s->ikey_node = calloc((size_t)1 << p->intern_h, 4);
				s->ikey_size = calloc((size_t)1 << p->intern_h, 8);
				s->iid = calloc((size_t)1 << p->intern_h, 4);
			}
			open = (int)r->stream;
			plen += enc(p, s, r, payload + plen);
		} else {
			memcpy(raw + rawlen, r->blob, r->blob_len);
			rawlen += r->blob_len;
			if (r->tag == TF_TAG_TICK && r->a - last_flush >= 200000000u) {
				last_flush = r->a;
				ZOUT(ZSTD_e_flush);
			} else if (r->tag == TF_TAG_END) {
				ZOUT(ZSTD_e_end);
			} else if (rawlen > (8u << 20)) {
				ZOUT(ZSTD_e_continue);
			}
		}
	}
	if (rawlen)
		ZOUT(ZSTD_e_end);
	printf("%-40s raw %6.3f  zst %10zu  %.4f B/ev\n", name, (double)total_raw / n_events,
	       total_z + 16, (double)(total_z + 16) / n_events);
	if (p->real) {
		struct tf_dec *d; struct tf_record rec; char msg[128]; int rc; size_t j = 0, bad = 0;
		uint64_t t0 = 0;
		struct timespec a, b;
		if (tf_dec_open_mem(&d, zbuf, zlen, msg) < 0) { fprintf(stderr, "open: %s\n", msg); exit(1); }
		clock_gettime(CLOCK_MONOTONIC, &a);
		while ((rc = tf_dec_next(d, &rec)) == 1) {
			if (rec.tag == TF_TAG_CHUNK) continue;
			while (j < nr && R[j].tag == TF_TAG_CHUNK) j++;
			struct rec *o = &R[j++];
			if (rec.tag == TF_TAG_ALLOC) {
				if (o->tag != TF_TAG_ALLOC || o->seq != rec.seq || o->stream != rec.stream || o->kind != rec.u.alloc.kind || o->a != rec.u.alloc.node || o->b != rec.u.alloc.size || o->c != rec.u.alloc.addr) bad++;
			} else if (rec.tag == TF_TAG_FREE) {
				if (o->tag != TF_TAG_FREE || o->seq != rec.seq || o->stream != rec.stream || o->kind != rec.u.free.kind || o->c != rec.u.free.addr) bad++;
			} else if (o->tag != rec.tag) bad++;
			if (bad == 1 && !t0) { t0 = 1; fprintf(stderr, "first mismatch at record %zu tag %u\n", j - 1, rec.tag); }
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("  roundtrip: rc %d %s, %zu mismatches, decode %.1f ns/record\n", rc, rc < 0 ? tf_dec_errmsg(d) : "", bad,
		       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)nr);
		tf_dec_free(d);
		free(zbuf);
	}
	if (getenv("STATS")) for (int t = 0; t < 256; t++) if (tagc[t]) printf("tag %02x n %9llu bytes %10llu\n", t, (unsigned long long)tagc[t], (unsigned long long)tagb[t]);
	memset(tagc, 0, sizeof(tagc)); memset(tagb, 0, sizeof(tagb));
	if (getenv("STATS")) printf("  free hit %llu miss %llu | alloc cls %llu rf %llu bump %llu explicit %llu (null %llu) | intern hit %llu miss %llu\n", (unsigned long long)st_fhit, (unsigned long long)st_fmiss, (unsigned long long)st_acls, (unsigned long long)st_arf, (unsigned long long)st_abump, (unsigned long long)st_aexp, (unsigned long long)st_a0, (unsigned long long)st_ihit, (unsigned long long)st_imiss);
	st_fhit = st_fmiss = st_acls = st_arf = st_abump = st_aexp = st_ihit = st_imiss = st_a0 = 0;
	ZSTD_freeCCtx(cc);
	free(raw);
	free(cout);
	free(payload);
	for (int i = 0; i < MAXS; i++) {
		free(S[i].hkey); free(S[i].hno); free(S[i].hsz);
		free(S[i].real_c);
		free(S[i].ikey_node); free(S[i].ikey_size); free(S[i].iid);
	}
}

static uint8_t *dup(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	memcpy(q, p, n);
	return q;
}

static void load(const char *path)
{
	struct tf_dec *d;
	struct tf_record rec;
	char msg[128];
	uint8_t buf[1 << 17];
	int rc;

	if (tf_dec_open(&d, path, msg) < 0) {
		fprintf(stderr, "%s\n", msg);
		exit(1);
	}
	while ((rc = tf_dec_next(d, &rec)) == 1) {
		struct rec r = { .tag = (uint8_t)rec.tag, .stream = rec.stream, .seq = rec.seq };
		struct tf_stream_state st = { 0 };
		size_t n = 0;
		switch (rec.tag) {
		case TF_TAG_CHUNK:
			continue;
		case TF_TAG_PROCESS:
			n = (size_t)tf_enc_process(buf, sizeof(buf), rec.u.process.pid, rec.u.process.ppid,
				rec.u.process.start_unix_ns, rec.u.process.page_size, rec.u.process.exe,
				rec.u.process.exe_len, rec.u.process.cmdline, rec.u.process.cmdline_len);
			break;
		case TF_TAG_TICK:
			n = tf_enc_tick(buf, rec.u.tick.watermark, rec.u.tick.time_ns, rec.u.tick.rss_bytes);
			r.a = rec.u.tick.time_ns;
			break;
		case TF_TAG_END:
			n = tf_enc_end(buf, rec.u.end.time_ns, rec.u.end.n_events);
			break;
		case TF_TAG_THREAD:
			n = tf_enc_thread(buf, &st, 1, rec.u.thread.tid, rec.u.thread.name, rec.u.thread.name_len);
			r.blob = dup(buf + 2, n - 2);
			r.blob_len = (uint32_t)(n - 2);
			push(&r);
			continue;
		case TF_TAG_MODULE:
			n = (size_t)tf_enc_module(buf, sizeof(buf), &st, 1, rec.u.module.id, rec.u.module.base,
				rec.u.module.path, rec.u.module.path_len, rec.u.module.build_id,
				rec.u.module.build_id_len, rec.u.module.segs, rec.u.module.n_segs);
			r.blob = dup(buf + 2, n - 2);
			r.blob_len = (uint32_t)(n - 2);
			push(&r);
			continue;
		case TF_TAG_UNLOAD:
			n = tf_enc_unload(buf, &st, 1, rec.u.unload.id);
			r.blob = dup(buf + 2, n - 2);
			r.blob_len = (uint32_t)(n - 2);
			push(&r);
			continue;
		case TF_TAG_NODE:
			r.a = rec.u.node.id; r.b = rec.u.node.parent; r.c = rec.u.node.addr;
			push(&r);
			continue;
		case TF_TAG_ALLOC:
			r.kind = rec.u.alloc.kind; r.a = rec.u.alloc.node; r.b = rec.u.alloc.size;
			r.c = rec.u.alloc.addr;
			n_events++;
			push(&r);
			continue;
		case TF_TAG_FREE:
			r.kind = rec.u.free.kind; r.c = rec.u.free.addr;
			n_events++;
			push(&r);
			continue;
		default:
			continue;
		}
		r.blob = dup(buf, n);
		r.blob_len = (uint32_t)n;
		push(&r);
	}
	if (rc < 0)
		fprintf(stderr, "warning: %s\n", tf_dec_errmsg(d));
	tf_dec_free(d);
}

static void parse(struct P *p, const char *s)
{
	char k[32];
	int v, used;

	while (sscanf(s, "%31[a-z_]=%d%n", k, &v, &used) == 2) {
		if (!strcmp(k, "l")) p->level = v;
		else if (!strcmp(k, "w")) p->wlog = v;
		else if (!strcmp(k, "ldm")) p->ldm = v;
		else if (!strcmp(k, "fold")) p->fold = v;
		else if (!strcmp(k, "ref")) p->ref_r = v;
		else if (!strcmp(k, "refh")) p->ref_h = v;
		else if (!strcmp(k, "rf")) p->rf_k = v;
		else if (!strcmp(k, "bump")) p->bump = v;
		else if (!strcmp(k, "intern")) p->intern = v;
		else if (!strcmp(k, "ih")) p->intern_h = v;
		else if (!strcmp(k, "cls")) p->cls = v;
		else if (!strcmp(k, "clsk")) p->clsk = v;
		else if (!strcmp(k, "clsrm")) p->clsrm = v;
		else if (!strcmp(k, "rfall")) p->rfall = v;
		else if (!strcmp(k, "noaddr")) p->noaddr = v;
		else if (!strcmp(k, "noseq")) p->noseq = v;
		else if (!strcmp(k, "z")) p->z = v;
		else if (!strcmp(k, "real")) p->real = v;
		else { fprintf(stderr, "unknown key %s\n", k); exit(2); }
		s += used;
		if (*s == ',') s++;
	}
}

/* Encoder cost: the old plain records against the cached events. */
static void encbench(void)
{
	static uint8_t buf[1 << 16];
	struct tf_stream_state *st = calloc(MAXS, sizeof(*st));
	struct tf_enc_cache *c = calloc(4, sizeof(*c));
	for (int mode = 0; mode < 2; mode++) {
		struct timespec a, b;
		size_t pos = 0, ev = 0;
		memset(st, 0, MAXS * sizeof(*st));
		memset(c, 0, 4 * sizeof(*c));
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		for (size_t i = 0; i < nr; i++) {
			struct rec *r = &R[i];
			struct tf_stream_state *s = &st[r->stream % MAXS];
			struct tf_enc_cache *cc = &c[r->stream % 4];
			if (pos > sizeof(buf) - 64)
				pos = 0;
			if (r->tag == TF_TAG_ALLOC)
				pos += mode ? tf_enc_alloc_c(buf + pos, s, cc, r->seq, r->kind, (uint32_t)r->a, r->b, r->c)
					    : tf_enc_alloc(buf + pos, s, r->seq, r->kind, (uint32_t)r->a, r->b, r->c);
			else if (r->tag == TF_TAG_FREE)
				pos += mode ? tf_enc_free_c(buf + pos, s, cc, r->seq, r->kind, r->c)
					    : tf_enc_free(buf + pos, s, r->seq, r->kind, r->c);
			else
				continue;
			ev++;
		}
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		printf("encode %s: %.2f ns/event (%d)\n", mode ? "cached" : "plain",
		       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / ev, buf[pos / 2]);
	}
	free(st);
	free(c);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	load(argv[1]);
	if (getenv("ENCBENCH"))
		encbench();
	printf("%s: %zu records, %llu events\n", argv[1], nr, (unsigned long long)n_events);
	for (int i = 2; i < argc; i++) {
		struct P p = { .level = 3, .wlog = 22, .ref_h = 12, .intern_h = 12, .clsk = 1 };
		parse(&p, argv[i]);
		run(&p, argv[i]);
	}
	return 0;
}
