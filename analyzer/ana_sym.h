/* Symbolizer: return addresses -> function, source file, line and inline
 * frames, with elfutils libdw. Offline: reads the ELF files named in the
 * trace's module records (and their separate debug info), never a live
 * process. Every distinct (module, address) pair is resolved once;
 * strings are interned. */
#ifndef ANA_SYM_H
#define ANA_SYM_H

#include <stddef.h>
#include <stdint.h>

struct ana_sym; /* libdw-backed symbolizer; not thread-safe */

/* One source-level frame. The strings belong to the ana_sym that filled it
 * and stay valid until ana_sym_free(). */
struct ana_frame {
	char *function; /* demangled; NULL if unknown */
	char *file;     /* source file path as in DWARF; NULL if unknown */
	uint32_t line;  /* 1-based source line; 0 if unknown */
};

/* Most frames one address expands to (inline chain plus the real function);
 * a longer chain keeps its innermost and outermost frames. */
#define ANA_SYM_MAX_FRAMES 64

/* Create a symbolizer. Returns 0 and sets *out, or -ENOMEM. Caller frees
 * with ana_sym_free(). */
int ana_sym_new(struct ana_sym **out);

/* Free sym and every string it handed out. NULL ok. */
void ana_sym_free(struct ana_sym *sym);

/* Set the separate-debug-info search path, in the syntax of elfutils'
 * dwfl_standard_find_debuginfo (libdwfl.h): colon-separated directories;
 * "" means the main file's directory, a relative entry is under it, an
 * absolute entry is searched by build-id (DIR/.build-id/xx/rest.debug) and
 * by .gnu_debuglink name. Default ":.debug:/usr/lib/debug". path is copied;
 * NULL restores the default. Call it before adding modules. Returns
 * 0 or -ENOMEM. */
int ana_sym_set_debug_path(struct ana_sym *sym, const char *path);

/* Register a module (ELF object) mapped at load bias base (dl_iterate_phdr's
 * dlpi_addr; 0 for a non-PIE executable). id is the trace's module id; a
 * later registration with the same id or an overlapping range wins in
 * ana_sym_resolve() (each registration keeps its own cache entries and
 * libdwfl session, for ana_sym_resolve_in()). path is
 * copied; build_id (build_id_len bytes, the NT_GNU_BUILD_ID descriptor) may
 * be NULL. The file is opened here only for its program headers and
 * build-id; debug info is loaded on the first address inside it. When the
 * file is missing, not ELF, or has another build-id, a .debug file is
 * searched by build-id in the debug path; failing that, returns -errno from
 * open, -ENOEXEC (not a usable ELF object) or -ESTALE (build-id mismatch),
 * and the module stays registered but unresolvable: addresses still map to
 * it (ana_sym_resolve() gives NULL frames and the module offset). Returns
 * -ENOMEM (module not registered) or -EINVAL (NULL path). */
int ana_sym_add_module(struct ana_sym *sym, uint32_t id, const char *path,
		       uint64_t base, const uint8_t *build_id,
		       size_t build_id_len);

/* Resolve return address addr: looks up addr - 1 (the call instruction)
 * in the module holding addr (the latest registration whose range holds
 * it; ana_sym_resolve_in() chooses the module instead).
 * Fills frames[0..n), n <= cap, innermost (inlined callee) first, the last
 * one being the real function containing the call; frames[i].line is the
 * line of the call in that function. Sets *module_id and *module_off
 * (addr - base, in bytes) when addr is inside a registered module (either
 * pointer may be NULL). Returns n >= 1 on success (fields may be NULL/0
 * where unknown), 0 when addr is in no known module (outputs untouched),
 * -EINVAL for cap < 1, -ENOMEM. Strings in frames are owned by sym. */
int ana_sym_resolve(struct ana_sym *sym, uint64_t addr, struct ana_frame *frames,
		    int cap, uint32_t *module_id, uint64_t *module_off);

/* Resolve return address addr as code of the module registered as
 * module_id (its latest registration), whatever other module covers addr:
 * the caller knows which object was mapped there when the address was
 * recorded (several may have been, one after the other, after dlclose).
 * Results are cached per (module, address), and each module keeps its own
 * libdwfl session. Fills frames as ana_sym_resolve() does and sets
 * *module_off (addr - base; may be NULL). Returns n >= 1 (for a module
 * whose file is unusable, or an address outside it, one frame with NULL/0
 * fields), 0 when no module has that id or addr is below the first page
 * (outputs untouched), -EINVAL for cap < 1, -ENOMEM. */
int ana_sym_resolve_in(struct ana_sym *sym, uint32_t module_id, uint64_t addr,
		       struct ana_frame *frames, int cap, uint64_t *module_off);

/* Path of the module last registered as id (owned by sym), or NULL. */
const char *ana_sym_module_path(struct ana_sym *sym, uint32_t id);

/* Demangle a C++ (Itanium ABI, "_Z...") symbol name with libstdc++'s
 * __cxa_demangle: "_ZN3app6Parser5parseEi" -> "app::Parser::parse(int)".
 * Returns a malloc'd string the caller frees, or NULL when name is not a
 * mangled name, cannot be demangled, or memory ran out. */
char *ana_sym_demangle(const char *name);

#endif
