/* csv.h: RFC 4180 results files in DeepHyper's layout: column order, appending rows, widening the header.
 * Thread-safe: several threads may write files at once (the same one too: see csv_append). */
#ifndef EVL_CSV_H
#define EVL_CSV_H

#include <stddef.h>

typedef struct csv_table {
  const char *const *cols;  /* ncols column names, any order, no duplicates */
  size_t ncols;
  const char *const *cells; /* nrows*ncols, row-major; NULL = empty cell */
  size_t nrows;
  /* Optional, nrows*ncols byte lengths of the cells, for values that hold NUL bytes;
   * NULL (what an initializer that leaves it out gives) = cells are NUL-terminated. */
  const size_t *lens;
  /* Optional, nrows*ncols flags: nonzero = the cell never needs quotes (a number's text, as
   * fmt_double and fmt_integer write it), so its bytes are not scanned; NULL = every cell is. */
  const unsigned char *plain;
} csv_table;

/* Order of columns in a file: "p:*" sorted byte-wise, then "objective", then "objective_<i>" by i
 * numerically, then "job_id", then "m:*" sorted byte-wise, then anything else sorted byte-wise.
 * Returns <0, 0, >0 like strcmp. */
int csv_column_cmp(const char *a, const char *b);

/* Append the rows of t to the CSV file at path (created with a header in csv_column_cmp order when
 * missing or empty, with O_EXCL and the umask's mode). When the file's header already holds every
 * column of t, the rows are appended in the header's order (missing cells empty) and only the header
 * is read. Otherwise the file is rewritten through a temporary file in the same directory
 * (path.tmp.XXXXXX made by mkostemp, given the old file's permission bits and, as root, its owner)
 * and rename(): header = union of old and new columns in csv_column_cmp order, old rows re-mapped
 * to it, then the new rows. No value is ever dropped: an old row with more fields than its header,
 * or a header naming a column twice, is an error rather than a guess. A file that ends inside a
 * quoted field that was never closed gets its quote closed before the new rows (else they would
 * vanish into that cell); the check reads only what was written since this process last left the
 * file whole (a mark per file, for a few files), so repeated dumps do not read the whole file. A symbolic link at path is refused (it could have been planted).
 * Cells are quoted ("" doubled) when they hold a comma, a double quote, CR or LF, or start or end with
 * a space; empty cells are written as nothing (pandas reads NaN). Lines end with "\n".
 * With t->nrows == 0 nothing is done. The file is complete (closed, and fsync'd along with its
 * directory entry when flush != 0) when the call returns. Returns 0, or -1 with a message in err naming
 * the path and the reason, e.g. `cannot open "/no/such/dir/results.csv" for appending: No such file
 * or directory`; on error the original file is left as it was.
 * Concurrent calls on one file (threads, processes, separate runs) take turns on an exclusive
 * flock(2) of the file itself, taken again when a rewrite replaced the file meanwhile: every row of
 * every call lands once, under one header. */
int csv_append(const char *path, const csv_table *t, int flush, char *err, size_t errlen);

#endif
