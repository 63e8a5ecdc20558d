/* x86_64 DWARF CFI (.eh_frame) reader: FDE lookup through _dl_find_object()
 * and the .eh_frame_hdr binary-search table, CIE/FDE parsing, and the CFA
 * program run up to one address for the few rules the unwinder follows.
 * See docs/how-it-works.md "Backtraces". */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>

#include "rec_cfi.h"
#include "rec_prim.h"

struct rec_cfi_cache rec_cfi_g;

int rec_cfi_init(void)
{
	if (rec_cfi_g.slots)
		return 0;
	rec_cfi_g.slots = rec_prim_map(sizeof(struct rec_cfi_slot) << REC_CFI_SLOTS_LOG2, 1);
	if (!rec_cfi_g.slots)
		return -ENOMEM;
	atomic_store(&rec_cfi_g.gen, 1);
	return 0;
}

void rec_cfi_invalidate(void)
{
	atomic_fetch_add(&rec_cfi_g.gen, 1);
}

void rec_cfi_store(uintptr_t pc, uint32_t gen, struct rec_cfi_rule rule)
{
	struct rec_cfi_slot *s = &rec_cfi_g.slots[rec_cfi_hash(pc)];
	uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	uint64_t r;

	if (w & 1)
		return; /* another writer: leave it */
	if (!atomic_compare_exchange_strong(&s->word, &w, (w & 0xffffffffu) + 1))
		return;
	atomic_thread_fence(memory_order_release);
	memcpy(&r, &rule, sizeof(r));
	atomic_store_explicit(&s->pc, pc, memory_order_relaxed);
	atomic_store_explicit(&s->rule, r, memory_order_relaxed);
	atomic_store_explicit(&s->word, (uint64_t)gen << 32 | (((w & 0xffffffffu) + 2) & 0xfffffffeu),
			      memory_order_release);
}

/* ---- reading .eh_frame ---------------------------------------------------- */

/* A bounded reader over [p, end). Any overrun sets bad. */
struct rd {
	const uint8_t *p, *end;
	int bad;
};

static uint64_t rd_fixed(struct rd *r, unsigned bytes)
{
	uint64_t v = 0;

	if ((size_t)(r->end - r->p) < bytes) {
		r->bad = 1;
		r->p = r->end;
		return 0;
	}
	memcpy(&v, r->p, bytes); /* little-endian */
	r->p += bytes;
	return v;
}

static uint64_t rd_uleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (r->p < r->end) {
		uint8_t b = *r->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

static int64_t rd_sleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (r->p < r->end) {
		uint8_t b = *r->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80)) {
			if (shift < 64 && (b & 0x40))
				v |= ~(uint64_t)0 << shift;
			return (int64_t)v;
		}
	}
	r->bad = 1;
	return 0;
}

#define PE_OMIT 0xff
#define PE_PCREL 0x10
#define PE_DATAREL 0x30
#define PE_INDIRECT 0x80

/* Read a value of pointer encoding enc's format (low 4 bits). */
static uint64_t rd_format(struct rd *r, uint8_t enc)
{
	switch (enc & 0x0f) {
	case 0x00: return rd_fixed(r, 8);                        /* absptr */
	case 0x01: return rd_uleb(r);                            /* uleb128 */
	case 0x02: return rd_fixed(r, 2);                        /* udata2 */
	case 0x03: return rd_fixed(r, 4);                        /* udata4 */
	case 0x04: return rd_fixed(r, 8);                        /* udata8 */
	case 0x09: return (uint64_t)rd_sleb(r);                  /* sleb128 */
	case 0x0a: return (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2);
	case 0x0b: return (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4);
	case 0x0c: return rd_fixed(r, 8);                        /* sdata8 */
	default:
		r->bad = 1;
		return 0;
	}
}

/* Read an encoded pointer: absptr, pcrel or datarel (base dbase, 0: not
 * allowed). Indirect pointers are only skipped (*ok = 0). */
static uint64_t rd_pointer(struct rd *r, uint8_t enc, uintptr_t dbase, int *ok)
{
	uintptr_t here = (uintptr_t)r->p;
	uint64_t v = rd_format(r, enc);

	*ok = !r->bad && !(enc & PE_INDIRECT);
	switch (enc & 0x70) {
	case 0x00:
		return v;
	case PE_PCREL:
		return v + here;
	case PE_DATAREL:
		if (!dbase)
			*ok = 0;
		return v + dbase;
	default:
		*ok = 0;
		return 0;
	}
}

/* Register numbers (x86_64 psABI) and rule kinds the interpreter tracks. */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16

enum { RULE_SAME, RULE_UNDEF, RULE_OFFSET, RULE_BAD };

struct row {
	int64_t cfa_reg;  /* -1: unset or an expression */
	int64_t cfa_off;
	uint8_t rbp, ra, rsp; /* RULE_* */
	int64_t rbp_off, ra_off;
};

struct cie {
	uint64_t caf;     /* code alignment factor */
	int64_t daf;      /* data alignment factor */
	uint8_t fde_enc;  /* 'R', default absptr */
	int has_z;
	const uint8_t *insn, *insn_end;
};

#define REMEMBER_MAX 8

/* v * daf without signed overflow (malformed CFI must not be UB). */
static inline int64_t scale(uint64_t v, int64_t daf)
{
	return (int64_t)(v * (uint64_t)daf);
}

static void set_rule(struct row *row, uint64_t reg, uint8_t how, int64_t off)
{
	if (reg == REG_RBP) {
		row->rbp = how;
		row->rbp_off = off;
	} else if (reg == REG_RA) {
		row->ra = how;
		row->ra_off = off;
	} else if (reg == REG_RSP) {
		row->rsp = how == RULE_SAME ? RULE_SAME : RULE_BAD;
	} /* other registers never matter: the CFA is rsp or rbp based */
}

static void restore_rule(struct row *row, const struct row *init, uint64_t reg)
{
	if (reg == REG_RBP) {
		row->rbp = init->rbp;
		row->rbp_off = init->rbp_off;
	} else if (reg == REG_RA) {
		row->ra = init->ra;
		row->ra_off = init->ra_off;
	} else if (reg == REG_RSP) {
		row->rsp = init->rsp;
	}
}

/* Run CFA instructions [p, end) from location loc until an advance passes
 * target. init: the row after the CIE's instructions (NULL while running
 * them). Returns 0, or -1 on an unknown or unsupported instruction. */
static int run_program(const uint8_t *p, const uint8_t *end, const struct cie *c,
		       uintptr_t loc, uintptr_t target, struct row *row, const struct row *init)
{
	struct row stack[REMEMBER_MAX];
	unsigned depth = 0;
	struct rd r = { p, end, 0 };

	while (r.p < r.end && !r.bad) {
		uint8_t op = *r.p++;
		uint64_t reg, delta = 0;
		int ok;

		switch (op >> 6) {
		case 1: /* advance_loc */
			delta = (uint64_t)(op & 0x3f) * c->caf;
			goto advance;
		case 2: /* offset */
			set_rule(row, op & 0x3f, RULE_OFFSET, scale(rd_uleb(&r), c->daf));
			continue;
		case 3: /* restore */
			if (!init)
				return -1;
			restore_rule(row, init, op & 0x3f);
			continue;
		}
		switch (op) {
		case 0x00: /* nop */
			continue;
		case 0x01: { /* set_loc */
			uint64_t to = rd_pointer(&r, c->fde_enc, 0, &ok);
			if (!ok)
				return -1;
			if (to > target)
				return 0;
			loc = to;
			continue;
		}
		case 0x02: delta = rd_fixed(&r, 1) * c->caf; goto advance;
		case 0x03: delta = rd_fixed(&r, 2) * c->caf; goto advance;
		case 0x04: delta = rd_fixed(&r, 4) * c->caf; goto advance;
		case 0x05: /* offset_extended */
			reg = rd_uleb(&r);
			set_rule(row, reg, RULE_OFFSET, scale(rd_uleb(&r), c->daf));
			continue;
		case 0x06: /* restore_extended */
			reg = rd_uleb(&r);
			if (!init)
				return -1;
			restore_rule(row, init, reg);
			continue;
		case 0x07: /* undefined */
			set_rule(row, rd_uleb(&r), RULE_UNDEF, 0);
			continue;
		case 0x08: /* same_value */
			set_rule(row, rd_uleb(&r), RULE_SAME, 0);
			continue;
		case 0x09: /* register */
			reg = rd_uleb(&r);
			(void)rd_uleb(&r);
			set_rule(row, reg, RULE_BAD, 0);
			continue;
		case 0x0a: /* remember_state */
			if (depth == REMEMBER_MAX)
				return -1;
			stack[depth++] = *row;
			continue;
		case 0x0b: /* restore_state */
			if (!depth)
				return -1;
			/* The whole row, CFA included (as GCC and LLVM read
			 * it: compilers rely on it around mid-function
			 * epilogues). */
			*row = stack[--depth];
			continue;
		case 0x0c: /* def_cfa */
			row->cfa_reg = (int64_t)rd_uleb(&r);
			row->cfa_off = (int64_t)rd_uleb(&r);
			continue;
		case 0x0d: /* def_cfa_register */
			row->cfa_reg = (int64_t)rd_uleb(&r);
			continue;
		case 0x0e: /* def_cfa_offset */
			row->cfa_off = (int64_t)rd_uleb(&r);
			continue;
		case 0x0f: { /* def_cfa_expression */
			uint64_t len = rd_uleb(&r);
			if (len > (uint64_t)(r.end - r.p))
				return -1;
			r.p += len;
			row->cfa_reg = -1;
			continue;
		}
		case 0x10:   /* expression */
		case 0x16: { /* val_expression */
			reg = rd_uleb(&r);
			uint64_t len = rd_uleb(&r);
			if (len > (uint64_t)(r.end - r.p))
				return -1;
			r.p += len;
			set_rule(row, reg, RULE_BAD, 0);
			continue;
		}
		case 0x11: /* offset_extended_sf */
			reg = rd_uleb(&r);
			set_rule(row, reg, RULE_OFFSET, scale((uint64_t)rd_sleb(&r), c->daf));
			continue;
		case 0x12: /* def_cfa_sf */
			row->cfa_reg = (int64_t)rd_uleb(&r);
			row->cfa_off = scale((uint64_t)rd_sleb(&r), c->daf);
			continue;
		case 0x13: /* def_cfa_offset_sf */
			row->cfa_off = scale((uint64_t)rd_sleb(&r), c->daf);
			continue;
		case 0x14: /* val_offset */
			reg = rd_uleb(&r);
			(void)rd_uleb(&r);
			set_rule(row, reg, RULE_BAD, 0);
			continue;
		case 0x15: /* val_offset_sf */
			reg = rd_uleb(&r);
			(void)rd_sleb(&r);
			set_rule(row, reg, RULE_BAD, 0);
			continue;
		case 0x2e: /* GNU_args_size */
			(void)rd_uleb(&r);
			continue;
		case 0x2f: /* GNU_negative_offset_extended */
			reg = rd_uleb(&r);
			set_rule(row, reg, RULE_OFFSET, scale(0 - rd_uleb(&r), c->daf));
			continue;
		default:
			return -1;
		}
advance:
		if (loc + delta > target)
			return 0;
		loc += delta;
	}
	return r.bad ? -1 : 0;
}

/* Parse the CIE at p (in .eh_frame). Returns 0 or -1. */
static int parse_cie(const uint8_t *p, struct cie *c)
{
	uint64_t len = 0;
	const uint8_t *aug;
	struct rd r;

	memcpy(&len, p, 4);
	p += 4;
	if (len == 0 || len > (1u << 24))
		return -1; /* also the 64-bit format (0xffffffff): not in .eh_frame */
	r = (struct rd){ p, p + len, 0 };
	if (rd_fixed(&r, 4) != 0)
		return -1; /* CIE id 0 in .eh_frame */
	uint8_t version = (uint8_t)rd_fixed(&r, 1);
	if (version != 1 && version != 3)
		return -1;
	aug = r.p;
	while (r.p < r.end && *r.p)
		r.p++;
	if (r.p >= r.end)
		return -1;
	r.p++;
	c->caf = rd_uleb(&r);
	c->daf = rd_sleb(&r);
	if (version == 1)
		(void)rd_fixed(&r, 1);
	else
		(void)rd_uleb(&r);
	c->fde_enc = 0; /* absptr */
	c->has_z = aug[0] == 'z';
	if (c->has_z) {
		uint64_t alen = rd_uleb(&r);
		const uint8_t *adata_end;
		int ok;
		if (r.bad || alen > (uint64_t)(r.end - r.p))
			return -1;
		adata_end = r.p + alen;
		for (const uint8_t *a = aug + 1; *a; a++) {
			switch (*a) {
			case 'L':
				(void)rd_fixed(&r, 1);
				break;
			case 'R':
				c->fde_enc = (uint8_t)rd_fixed(&r, 1);
				break;
			case 'P': {
				uint8_t enc = (uint8_t)rd_fixed(&r, 1);
				(void)rd_pointer(&r, enc, 0, &ok);
				break;
			}
			case 'S': /* signal frame: libunwind's job */
			default:
				return -1;
			}
		}
		if (r.bad || r.p > adata_end)
			return -1;
		r.p = adata_end;
	} else if (aug[0]) {
		return -1;
	}
	if (r.bad || c->fde_enc == PE_OMIT)
		return -1;
	c->insn = r.p;
	c->insn_end = r.end;
	return 0;
}

/* Find the FDE covering pc through the .eh_frame_hdr table at hdr. Returns
 * it or NULL. */
static const uint8_t *find_fde(const uint8_t *hdr, uintptr_t pc)
{
	struct rd r = { hdr, hdr + 4096, 0 };
	int ok;

	if (rd_fixed(&r, 1) != 1)
		return NULL;
	uint8_t frame_enc = (uint8_t)rd_fixed(&r, 1);
	uint8_t count_enc = (uint8_t)rd_fixed(&r, 1);
	uint8_t table_enc = (uint8_t)rd_fixed(&r, 1);
	if (frame_enc == PE_OMIT || count_enc == PE_OMIT || table_enc != 0x3b)
		return NULL; /* no sorted table of datarel sdata4 pairs */
	(void)rd_pointer(&r, frame_enc, (uintptr_t)hdr, &ok);
	if (!ok)
		return NULL;
	uint64_t count = rd_pointer(&r, count_enc, (uintptr_t)hdr, &ok);
	if (!ok || count == 0 || count > (1u << 28))
		return NULL;
	const uint8_t *table = r.p;
	int64_t rel = (int64_t)(pc - (uintptr_t)hdr);
	size_t lo = 0, hi = (size_t)count; /* answer in [lo, hi) */
	int32_t e[2];

	memcpy(e, table, 8);
	if (rel < e[0])
		return NULL;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		memcpy(e, table + mid * 8, 4);
		if (rel >= e[0])
			lo = mid;
		else
			hi = mid;
	}
	memcpy(e, table + lo * 8, 8);
	return hdr + e[1];
}

struct rec_cfi_rule rec_cfi_parse(uintptr_t pc)
{
	struct rec_cfi_rule fail = { 0, 0, REC_CFI_FAIL, 0 }, out = fail;
	struct dl_find_object dlfo;
	const uint8_t *fde, *cie_p, *p;
	uint64_t len = 0;
	uint32_t cie_off;
	struct cie c;
	struct row row, init;
	int ok;

	if (_dl_find_object((void *)pc, &dlfo) != 0 || !dlfo.dlfo_eh_frame)
		return fail;
	fde = find_fde(dlfo.dlfo_eh_frame, pc);
	if (!fde)
		return fail;
	p = fde;
	memcpy(&len, p, 4);
	p += 4;
	if (len < 8 || len > (1u << 24))
		return fail;
	const uint8_t *end = p + len;
	memcpy(&cie_off, p, 4);
	if (cie_off == 0)
		return fail; /* a CIE, not an FDE */
	cie_p = p - cie_off;
	p += 4;
	if (parse_cie(cie_p, &c) < 0)
		return fail;
	struct rd r = { p, end, 0 };
	uint64_t begin = rd_pointer(&r, c.fde_enc, 0, &ok);
	if (!ok)
		return fail;
	uint64_t range = rd_format(&r, c.fde_enc);
	if (r.bad || pc < begin || pc - begin >= range)
		return fail;
	if (c.has_z) {
		uint64_t alen = rd_uleb(&r);
		if (r.bad || alen > (uint64_t)(r.end - r.p))
			return fail;
		r.p += alen;
	}

	row = (struct row){ .cfa_reg = -1, .rbp = RULE_SAME, .ra = RULE_BAD, .rsp = RULE_SAME };
	if (run_program(c.insn, c.insn_end, &c, (uintptr_t)begin, UINTPTR_MAX, &row, NULL) < 0)
		return fail;
	init = row;
	if (run_program(r.p, end, &c, (uintptr_t)begin, pc, &row, &init) < 0)
		return fail;

	if (row.ra == RULE_UNDEF) {
		out.kind = REC_CFI_END;
		return out;
	}
	if ((row.cfa_reg != REG_RSP && row.cfa_reg != REG_RBP) || row.rsp != RULE_SAME ||
	    row.ra != RULE_OFFSET || row.ra_off != -8 || row.cfa_off < 8 ||
	    row.cfa_off > INT32_MAX)
		return fail;
	out.cfa_off = (int32_t)row.cfa_off;
	if (row.cfa_reg == REG_RBP)
		out.flags |= REC_CFI_CFA_RBP;
	if (row.rbp == RULE_OFFSET) {
		if (row.rbp_off < INT16_MIN || row.rbp_off > INT16_MAX)
			return fail;
		out.flags |= REC_CFI_RBP_SAVED;
		out.rbp_off = (int16_t)row.rbp_off;
	} else if (row.rbp != RULE_SAME) {
		return fail;
	}
	out.kind = REC_CFI_STEP;
	return out;
}
