/* The self-contained HTML report (memana html): the template
 * analyzer/html/report.html, linked into memana, with the data of one
 * database inserted as a JSON object (docs/how-it-works.md "HTML report"). */
#ifndef ANA_HTML_H
#define ANA_HTML_H

#include <stddef.h>
#include <stdio.h>

#include "ana_db.h"

/* Write the page for db (a complete database: every site; name is shown
 * as the trace's path) to f, with top sites per list in the tables and at
 * most flame_nodes nodes per flame graph. Returns 0, or -ENOMEM,
 * -CM_E_SQLITE, -EIO with errmsg (cap bytes) set. */
int ana_html_write(struct ana_db *db, const char *name, unsigned top, size_t flame_nodes,
		   FILE *f, char *errmsg, size_t cap);

#endif
