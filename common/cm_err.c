/* cm_strerror: one table for project codes, strerrordesc_np for errno.
 * Must not allocate: the recorder calls it. */
#include <string.h>

#include "cm_err.h"

const char *cm_strerror(int err)
{
	static const char *const project[] = {
		[CM_E_CORRUPT - CM_E_FIRST] = "corrupt trace",
		[CM_E_TRUNCATED - CM_E_FIRST] = "truncated trace",
		[CM_E_VERSION - CM_E_FIRST] = "unsupported trace format version",
		[CM_E_LIMIT - CM_E_FIRST] = "value exceeds a limit",
		[CM_E_MAGIC - CM_E_FIRST] = "not a memrec trace (bad magic)",
		[CM_E_ZSTD - CM_E_FIRST] = "zstd error",
		[CM_E_SQLITE - CM_E_FIRST] = "sqlite error",
		[CM_E_USAGE - CM_E_FIRST] = "usage error",
	};
	int e = err < 0 ? -err : err;

	if (e >= CM_E_FIRST && e <= CM_E_LAST)
		return project[e - CM_E_FIRST];
	if (e == 0)
		return "success";
	const char *s = strerrordesc_np(e);
	return s ? s : "unknown error";
}
