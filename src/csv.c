/* csv.c: DeepHyper-layout CSV files: column order, RFC 4180 reading and writing, append or widen-and-rewrite.
 * All state lives in one call's locals, so threads may write different files at the same time. */
#include "csv.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

/* ---------------------------------------------------------------- column order */

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

static int all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return n > 0;
}

static int col_rank(const char *s, size_t n) {
  if (n >= 2 && s[0] == 'p' && s[1] == ':') return 0;
  if (n == 9 && memcmp(s, "objective", 9) == 0) return 1;
  if (n > 10 && memcmp(s, "objective_", 10) == 0 && all_digits(s + 10, n - 10)) return 2;
  if (n == 6 && memcmp(s, "job_id", 6) == 0) return 3;
  if (n >= 2 && s[0] == 'm' && s[1] == ':') return 4;
  return 5;
}

/* Decimal strings compared as numbers of any size, so objective_10 comes after objective_9. */
static int number_cmp(const char *a, size_t an, const char *b, size_t bn) {
  while (an > 1 && *a == '0') a++, an--;
  while (bn > 1 && *b == '0') b++, bn--;
  if (an != bn) return an < bn ? -1 : 1;
  return memcmp(a, b, an);
}

/* csv_column_cmp on counted strings: names read back from a file may hold any byte. */
static int column_cmp(const char *a, size_t an, const char *b, size_t bn) {
  int ra = col_rank(a, an), rb = col_rank(b, bn);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 2) {
    int c = number_cmp(a + 10, an - 10, b + 10, bn - 10);
    if (c) return c;
  }
  return bytes_cmp(a, an, b, bn); /* also orders objective_1 and objective_01 */
}

int csv_column_cmp(const char *a, const char *b) { return column_cmp(a, strlen(a), b, strlen(b)); }

/* ---------------------------------------------------------------- reading */

typedef struct field {
  size_t off, len; /* into doc.text */
} field;

/* Parsed records: the unquoted bytes of every field in text, fields in order, and where rows start. */
typedef struct doc {
  buf_t text;
  field *f;
  size_t nf, capf;
  size_t *row;
  size_t nrows, caprows;
} doc;

static void doc_reset(doc *d) { d->text.len = d->nf = d->nrows = 0; }

static void doc_free(doc *d) {
  buf_free(&d->text);
  free(d->f);
  free(d->row);
  memset(d, 0, sizeof *d);
}

static void add_field(doc *d, size_t off) {
  if (d->nf == d->capf) {
    d->capf = d->capf ? 2 * d->capf : 64;
    d->f = xrealloc(d->f, d->capf * sizeof *d->f);
  }
  d->f[d->nf++] = (field){off, d->text.len - off};
}

static void add_row(doc *d, size_t first) {
  if (d->nrows == d->caprows) {
    d->caprows = d->caprows ? 2 * d->caprows : 64;
    d->row = xrealloc(d->row, d->caprows * sizeof *d->row);
  }
  d->row[d->nrows++] = first;
}

static size_t row_len(const doc *d, size_t r) {
  return (r + 1 < d->nrows ? d->row[r + 1] : d->nf) - d->row[r];
}

static const char *field_ptr(const doc *d, size_t i) {
  return d->text.data ? d->text.data + d->f[i].off : "";
}

/* Read one field starting at data[*pos] into d; returns whether it started with a quote. Like
 * Python's csv module, text after a closing quote is kept and an unterminated quote runs to the end:
 * a damaged file loses no bytes when it is rewritten. */
static int parse_field(doc *d, const char *data, size_t len, size_t *pos) {
  size_t i = *pos, off = d->text.len;
  int quoted = i < len && data[i] == '"';
  if (quoted) {
    for (i++;;) {
      const char *q = memchr(data + i, '"', len - i);
      size_t end = q ? (size_t)(q - data) : len;
      buf_add(&d->text, data + i, end - i);
      i = q ? end + 1 : len;
      if (!q || i >= len || data[i] != '"') break;
      buf_addc(&d->text, '"');
      i++;
    }
  }
  size_t s = i;
  while (i < len && data[i] != ',' && data[i] != '\n' && data[i] != '\r') i++;
  buf_add(&d->text, data + s, i - s);
  add_field(d, off);
  *pos = i;
  return quoted;
}

/* Parse records from data[0..len), at most maxrows of them (0: all). Blank lines are skipped as
 * pandas does. *ended tells whether the last record read was closed by a line break. */
static void parse(doc *d, const char *data, size_t len, size_t maxrows, int *ended) {
  size_t i = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
  *ended = 0;
  while (i < len && (!maxrows || d->nrows < maxrows)) {
    size_t first = d->nf;
    int quoted = 0;
    for (;;) {
      quoted |= parse_field(d, data, len, &i);
      if (i >= len || data[i] != ',') break;
      i++;
    }
    *ended = i < len;
    if (i < len) i += data[i] == '\r' && i + 1 < len && data[i + 1] == '\n' ? 2 : 1;
    if (d->nf == first + 1 && !quoted && d->f[first].len == 0)
      d->nf = first; /* a blank line */
    else
      add_row(d, first);
  }
}

/* ---------------------------------------------------------------- writing */

/* Where an output column takes its cells from: the old file's field index and the new table's
 * column index, -1 when absent. */
typedef struct outcol {
  const char *name;
  size_t len;
  long old, cur;
} outcol;

/* Bytes that make a cell quoted wherever they are. */
static const unsigned char NEEDS_QUOTE[256] = {[','] = 1, ['"'] = 1, ['\r'] = 1, ['\n'] = 1};

/* Whether a byte of w is below 0x2D ((v - 0x2D..) & ~v & 0x80.., exact for bounds up to 0x80):
 * every byte of NEEDS_QUOTE is (',' is 0x2C) and no byte of a number is but the '+' of an exponent,
 * so a cell passes this cheap filter, or gets the exact check. */
static int word_has_low_byte(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ULL;
  return ((w - ones * 0x2D) & ~w & (ones * 0x80)) != 0;
}

static int needs_quotes(const char *s, size_t n) {
  if (s[0] == ' ' || s[n - 1] == ' ') return 1;
  if (n >= 8) { /* eight bytes at a time, the last word overlapping the one before */
    uint64_t w;
    size_t i = 0;
    for (;; i += 8) {
      memcpy(&w, s + (i + 8 < n ? i : n - 8), 8);
      if (word_has_low_byte(w)) break;
      if (i + 8 >= n) return 0;
    }
  }
  for (size_t i = 0; i < n; i++)
    if (NEEDS_QUOTE[(unsigned char)s[i]]) return 1;
  return 0;
}

/* Write the cell s[0..n) quoted, its quotes doubled, at o: at most 2n + 2 bytes. Returns the end. */
static char *put_quoted(char *o, const char *s, size_t n) {
  *o++ = '"';
  for (const char *q; n && (q = memchr(s, '"', n)); n -= (size_t)(q - s) + 1, s = q + 1) {
    memcpy(o, s, (size_t)(q - s) + 1);
    o += (q - s) + 1;
    *o++ = '"';
  }
  memcpy(o, s, n);
  o += n;
  *o++ = '"';
  return o;
}

/* Copy 4 <= n <= 32 bytes with two overlapping moves of a fixed size (the compiler's own loads and
 * stores, not a call); other lengths go to memcpy. */
static void copy_cell(char *o, const char *s, size_t n) {
  if (n >= 16 && n <= 32) {
    memcpy(o, s, 16);
    memcpy(o + n - 16, s + n - 16, 16);
  } else if (n >= 8 && n < 16) {
    memcpy(o, s, 8);
    memcpy(o + n - 8, s + n - 8, 8);
  } else if (n >= 4 && n < 8) {
    memcpy(o, s, 4);
    memcpy(o + n - 4, s + n - 4, 4);
  } else {
    memcpy(o, s, n);
  }
}

/* Write the cell s[0..n) at o, which has room for 2n + 2 bytes: quoted if it must be (unless
 * plain: a number's text, never scanned), "" if it is empty and alone on its line (a blank line,
 * which readers skip). Returns the end. */
static inline char *put_cell_at(char *o, const char *s, size_t n, int lone, int plain) {
  if (n == 0) {
    if (lone) *o++ = '"', *o++ = '"';
    return o;
  }
  if (!plain && needs_quotes(s, n)) return put_quoted(o, s, n);
  copy_cell(o, s, n);
  return o + n;
}

static void put_cell(buf_t *b, const char *s, size_t n, int lone) {
  char *o = buf_reserve(b, 2 * n + 2);
  b->len = (size_t)(put_cell_at(o, s, n, lone, 0) - b->data);
}

static void put_header(buf_t *b, const outcol *oc, size_t n) {
  for (size_t k = 0; k < n; k++) {
    if (k) buf_addc(b, ',');
    put_cell(b, oc[k].name, oc[k].len, n == 1);
  }
  buf_addc(b, '\n');
}

/* The rows of t from row from on, in the order of the columns oc, until b holds limit bytes or more
 * (SIZE_MAX: all of them); returns the next row. Room is checked per cell inline (a cell takes at
 * most 2 len + 3 bytes, quoted with its separator). */
static size_t put_new_rows(buf_t *b, const csv_table *t, const outcol *oc, size_t n, size_t from, size_t limit) {
  char *o = buf_reserve(b, 64), *end = b->data + b->cap; /* never arithmetic on a NULL data */
  size_t r = from;
  for (; r < t->nrows && (size_t)(o - b->data) < limit; r++) {
    size_t row = r * t->ncols;
    for (size_t k = 0; k < n; k++) {
      long c = oc[k].cur;
      const char *s = c < 0 ? NULL : t->cells[row + (size_t)c];
      size_t len = !s ? 0 : t->lens ? t->lens[row + (size_t)c] : strlen(s);
      if ((size_t)(end - o) < 2 * len + 3) {
        b->len = (size_t)(o - b->data);
        o = buf_reserve(b, 2 * len + 3);
        end = b->data + b->cap;
      }
      o = put_cell_at(o, s, len, n == 1, t->plain && c >= 0 && t->plain[row + (size_t)c]);
      *o++ = ',';
    }
    o[-1] = '\n'; /* the last cell's separator */
  }
  b->len = (size_t)(o - b->data);
  return r;
}

/* Rows 1.. of d (row 0 is its header), re-mapped to the columns oc. */
static void put_old_rows(buf_t *b, const doc *d, const outcol *oc, size_t n) {
  for (size_t r = 1; r < d->nrows; r++) {
    size_t first = d->row[r], have = row_len(d, r);
    for (size_t k = 0; k < n; k++) {
      if (k) buf_addc(b, ',');
      if (oc[k].old >= 0 && (size_t)oc[k].old < have) {
        size_t i = first + (size_t)oc[k].old;
        put_cell(b, field_ptr(d, i), d->f[i].len, n == 1);
      } else {
        put_cell(b, NULL, 0, n == 1);
      }
    }
    buf_addc(b, '\n');
  }
}

static int outcol_cmp(const void *pa, const void *pb) {
  const outcol *a = pa, *b = pb;
  return column_cmp(a->name, a->len, b->name, b->len);
}

/* ---------------------------------------------------------------- one call */

typedef struct appender {
  const char *path;
  const csv_table *t;
  int flush;
  char *err;
  size_t errlen;
  int fd, created, eof;
  struct stat st;
  buf_t raw; /* the file's first raw.len bytes */
  doc d;     /* records parsed from raw */
} appender;

static int fail(appender *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(appender *a, const char *fmt, ...) {
  if (a->err && a->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, a->errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* strerror is not thread-safe; glibc's strerror_r (GNU flavour under _GNU_SOURCE) is. */
static const char *errstr(int e, char *buf, size_t n) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, buf, n);
#else
  if (strerror_r(e, buf, n) != 0) snprintf(buf, n, "error %d", e);
  return buf;
#endif
}

static int fail_errno(appender *a, const char *what, const char *path) {
  char eb[128];
  const char *m = errstr(errno, eb, sizeof eb);
  return fail(a, "cannot %s \"%s\": %s", what, path, m);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}

/* Best effort: after a rename the data is in place, and a directory that cannot be synced is no
 * reason to report failure for it. */
static void sync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash == path ? xstrdup("/") : slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
  if (!dir) return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

/* Open path for appending without following a link planted at its name: an existing file, or a
 * new one made with O_EXCL (the umask's mode). */
static int open_name(appender *a) {
  for (;;) {
    a->created = 0;
    a->fd = open(a->path, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (a->fd >= 0 || errno != ENOENT) break;
    a->fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    a->created = a->fd >= 0;
    if (a->fd >= 0 || errno != EEXIST) break; /* EEXIST: another writer made it first */
  }
  if (a->fd >= 0) return 0;
  char eb[128];
  const char *m = errno == ELOOP ? "it is a symbolic link (refused: it could point anywhere)" : errstr(errno, eb, sizeof eb);
  return fail(a, "cannot open \"%s\" for appending: %s", a->path, m);
}

/* Whether the name still leads to the file a->fd holds: a writer that renamed a wider copy over it,
 * or took back a file it had just made, leaves the lock holder with a file no one reads. */
static int still_named(appender *a) {
  struct stat now;
  return a->st.st_nlink > 0 && lstat(a->path, &now) == 0 && now.st_dev == a->st.st_dev && now.st_ino == a->st.st_ino;
}

/* Open the file and hold an exclusive flock on it until the call returns, so concurrent dumps
 * (threads, evaluators, separate runs) take turns: no row is lost or duplicated, one header. */
static int open_target(appender *a) {
  for (;;) {
    if (open_name(a)) return -1;
    int rc;
    while ((rc = flock(a->fd, LOCK_EX)) < 0 && errno == EINTR) {
    }
    if (rc < 0) return fail_errno(a, "lock", a->path);
    if (fstat(a->fd, &a->st) < 0) return fail_errno(a, "stat", a->path);
    if (!S_ISREG(a->st.st_mode)) return fail(a, "cannot append to \"%s\": not a regular file", a->path);
    if (still_named(a)) break;
    close(a->fd);
    a->fd = -1;
  }
  a->created = a->created && a->st.st_size == 0;
  return 0;
}

/* Read the next chunk (up to everything when all != 0) into a->raw; sets a->eof at the end. */
static int read_more(appender *a, int all) {
  for (;;) {
    char *p = buf_reserve(&a->raw, 1 << 16);
    ssize_t n = pread(a->fd, p, 1 << 16, (off_t)a->raw.len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(a, "read", a->path);
    a->raw.len += (size_t)n;
    a->eof = n == 0;
    if (!all || a->eof) return 0;
  }
}

/* Parse the header record into a->d, reading only as much of the file as it takes. */
static int read_header(appender *a) {
  for (;;) {
    int ended;
    doc_reset(&a->d);
    parse(&a->d, a->raw.data, a->raw.len, 1, &ended);
    if (a->eof || (a->d.nrows == 1 && ended)) return 0;
    if (read_more(a, 0)) return -1;
  }
}

/* The one state shared by calls: where this process last left each of a few files whole (ended
 * by its own complete records), so that the scan for a quote left open reads only what others
 * wrote since, not the whole file on every dump. A mark holds the last bytes written before it: a
 * file replaced, truncated, or made anew under a reused inode number does not hold them there, and
 * is scanned from the start. */
typedef struct clean_mark {
  dev_t dev;
  ino_t ino;
  off_t size;
  size_t ntail;
  char tail[32];
} clean_mark;
static clean_mark marks[16];
static unsigned next_mark;
static pthread_mutex_t marks_mu = PTHREAD_MUTEX_INITIALIZER;

/* A mutex that cannot be taken or given back is a corrupted process: nothing to report to. */
static void marks_lock(int take) {
  if ((take ? pthread_mutex_lock(&marks_mu) : pthread_mutex_unlock(&marks_mu)) != 0) abort();
}

static clean_mark *find_mark(dev_t dev, ino_t ino) {
  for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
    if (marks[i].size > 0 && marks[i].dev == dev && marks[i].ino == ino) return &marks[i];
  return NULL;
}

static off_t clean_upto(const appender *a) {
  marks_lock(1);
  const clean_mark *m = find_mark(a->st.st_dev, a->st.st_ino);
  clean_mark copy = m ? *m : (clean_mark){0};
  marks_lock(0);
  char now[sizeof copy.tail];
  if (!m || copy.size > a->st.st_size ||
      pread(a->fd, now, copy.ntail, copy.size - (off_t)copy.ntail) != (ssize_t)copy.ntail ||
      memcmp(now, copy.tail, copy.ntail) != 0)
    return 0;
  return copy.size;
}

/* The file at (dev, ino) is whole up to size, where out (what we wrote last) ends. */
static void mark_clean(dev_t dev, ino_t ino, off_t size, const char *data, size_t len) {
  marks_lock(1);
  clean_mark *m = find_mark(dev, ino);
  if (!m) m = &marks[next_mark++ % (sizeof marks / sizeof *marks)];
  m->dev = dev, m->ino = ino, m->size = size;
  m->ntail = len < sizeof m->tail ? len : sizeof m->tail;
  memcpy(m->tail, data + len - m->ntail, m->ntail);
  marks_lock(0);
}

/* Whether the file ends inside a quoted field (1), as parse_field reads it: a quote opens a field
 * only at its start, "" inside one is an escaped quote. Streams the file in chunks from its clean
 * mark, looking only at quotes (memchr), so memory stays small whatever the file's size. Returns 0,
 * 1 or -1 on error. */
static int ends_in_quote(appender *a) {
  enum { CHUNK = 1 << 16 };
  char *chunk = xmalloc(CHUNK);
  int inside = 0, pending = 0; /* pending: inside, a quote ended the previous chunk */
  char prev = '\n';             /* the byte before the chunk: a field starts after it */
  off_t off = clean_upto(a);
  for (;;) {
    ssize_t n = pread(a->fd, chunk, CHUNK, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      free(chunk);
      return fail_errno(a, "read", a->path);
    }
    if (n == 0) break;
    const char *p = chunk, *end = chunk + n;
    if (pending) {
      pending = 0;
      if (*p == '"') p++; /* an escaped quote split across chunks */
      else inside = 0;
    }
    while (p < end) {
      const char *q = memchr(p, '"', (size_t)(end - p));
      if (!q) break;
      char before = q > chunk ? q[-1] : prev;
      if (!inside) {
        inside = before == ',' || before == '\n' || before == '\r' ||
                 (off == 0 && q == chunk + 3 && memcmp(chunk, "\xEF\xBB\xBF", 3) == 0);
      } else if (q + 1 == end) {
        pending = 1;
      } else if (q[1] == '"') {
        q++;
      } else {
        inside = 0;
      }
      p = q + 1;
    }
    prev = end[-1];
    off += n;
  }
  free(chunk);
  return inside && !pending;
}

/* Take back a failed append. Best effort: the error being reported already says it failed. */
static void undo_append(appender *a) {
  int rc = a->created ? unlink(a->path)
           : a->fd >= 0 ? ftruncate(a->fd, a->st.st_size)
                        : truncate(a->path, a->st.st_size);
  (void)rc;
}

/* The last bytes written so far (up to 32, a clean mark's tail), after n more bytes at p. */
typedef struct tail {
  char bytes[32];
  size_t n;
} tail_t;

static void keep_tail(tail_t *tl, const char *p, size_t n) {
  size_t keep = n >= sizeof tl->bytes ? 0 : tl->n + n > sizeof tl->bytes ? sizeof tl->bytes - n : tl->n;
  if (n > sizeof tl->bytes) p += n - sizeof tl->bytes, n = sizeof tl->bytes;
  memmove(tl->bytes, tl->bytes + tl->n - keep, keep);
  memcpy(tl->bytes + keep, p, n);
  tl->n = keep + n;
}

/* Rows go to the file in chunks of about this many bytes: the buffer is reused, not grown to the
 * whole batch (fresh memory costs a page fault per 4 KiB); 256 KiB measured faster than 1 or 4 MiB
 * for 20,000 and 100,000 rows. */
enum { CHUNK_BYTES = 1 << 18 };

/* Write out (a header, or nothing) and then the rows of a->t in the columns oc (n of them) at the
 * end of the file, taking it all back on any failure. */
static int append_bytes(appender *a, buf_t *out, const outcol *oc, size_t n) {
  char last = 0;
  int open_quote = a->st.st_size > 0 ? ends_in_quote(a) : 0;
  if (open_quote < 0) return -1;
  if (a->st.st_size > 0 && pread(a->fd, &last, 1, a->st.st_size - 1) == 1 && (last != '\n' || open_quote)) {
    /* The file ended in mid-line, or inside a quoted field its writer never closed (our rows would
     * vanish into that cell): close the quote and start ours on a line of their own. */
    buf_t fixed;
    buf_init(&fixed);
    if (open_quote) buf_addc(&fixed, '"');
    buf_addc(&fixed, '\n');
    buf_add(&fixed, out->data, out->len);
    buf_free(out);
    *out = fixed;
  }
  off_t written = 0;
  tail_t tl = {.n = 0};
  int failed = 0;
  for (size_t r = 0; !failed && (r < a->t->nrows || out->len);) {
    r = put_new_rows(out, a->t, oc, n, r, CHUNK_BYTES);
    failed = write_all(a->fd, out->data, out->len) < 0;
    keep_tail(&tl, out->data, out->len);
    written += (off_t)out->len;
    out->len = 0;
  }
  if (failed || (a->flush && fsync(a->fd) < 0)) {
    int e = errno;
    undo_append(a);
    errno = e;
    return fail_errno(a, "write", a->path);
  }
  int rc = close(a->fd);
  a->fd = -1;
  if (rc < 0) {
    int e = errno;
    undo_append(a);
    errno = e;
    return fail_errno(a, "write", a->path);
  }
  mark_clean(a->st.st_dev, a->st.st_ino, a->st.st_size + written, tl.bytes, tl.n);
  if (a->flush && a->created) sync_dir(a->path);
  return 0;
}

static int write_new_file(appender *a) {
  const csv_table *t = a->t;
  outcol *oc = xmalloc(t->ncols * sizeof *oc);
  for (size_t c = 0; c < t->ncols; c++) oc[c] = (outcol){t->cols[c], strlen(t->cols[c]), -1, (long)c};
  qsort(oc, t->ncols, sizeof *oc, outcol_cmp);
  buf_t out;
  buf_init(&out);
  put_header(&out, oc, t->ncols);
  int rc = append_bytes(a, &out, oc, t->ncols);
  free(oc);
  buf_free(&out);
  return rc;
}

/* Header columns of a->d (row 0) with, for each, the column of t that fills it. Sets *missing to
 * the number of t's columns the header lacks, and newpos[c] to column c's header index or -1. */
static outcol *map_header(appender *a, long *newpos, size_t *missing) {
  const doc *d = &a->d;
  size_t h = row_len(d, 0);
  outcol *oc = xmalloc((h + a->t->ncols) * sizeof *oc);
  for (size_t j = 0; j < h; j++) oc[j] = (outcol){field_ptr(d, j), d->f[j].len, (long)j, -1};
  *missing = 0;
  for (size_t c = 0; c < a->t->ncols; c++) {
    const char *name = a->t->cols[c];
    size_t len = strlen(name);
    newpos[c] = -1;
    for (size_t j = 0; j < h && newpos[c] < 0; j++)
      if (oc[j].len == len && memcmp(oc[j].name, name, len) == 0) newpos[c] = (long)j;
    if (newpos[c] < 0)
      ++*missing;
    else
      oc[newpos[c]].cur = (long)c;
  }
  return oc;
}

/* Refuse files whose rewrite could lose a value: a column named twice, a row wider than the header. */
static int check_old(appender *a, outcol *oc, size_t h) {
  qsort(oc, h, sizeof *oc, outcol_cmp);
  for (size_t j = 1; j < h; j++)
    if (oc[j].len == oc[j - 1].len && bytes_cmp(oc[j].name, oc[j].len, oc[j - 1].name, oc[j - 1].len) == 0)
      return fail(a, "cannot widen \"%s\": its header names column \"%.*s\" twice", a->path, (int)oc[j].len,
                  oc[j].name);
  for (size_t r = 1; r < a->d.nrows; r++)
    if (row_len(&a->d, r) > h)
      return fail(a, "cannot widen \"%s\": record %zu has %zu fields but the header has %zu", a->path, r + 1,
                  row_len(&a->d, r), h);
  return 0;
}

/* A new file beside path, made by mkostemp (O_EXCL: never a planted name or link), with the old
 * file's permission bits and, when we may, its owner: a rewrite never widens who can read it. */
static int make_temp(appender *a, char **tmp) {
  size_t n = strlen(a->path) + 16;
  *tmp = xmalloc(n);
  snprintf(*tmp, n, "%s.tmp.XXXXXX", a->path);
  int fd = mkostemp(*tmp, O_CLOEXEC);
  if (fd < 0) return fail_errno(a, "create a temporary file like", *tmp);
  if (fchmod(fd, a->st.st_mode & 0777) < 0) {
    fail_errno(a, "set the mode of", *tmp);
    close(fd);
    unlink(*tmp);
    return -1;
  }
  /* Only root can give a file away; anyone else keeps the owner they made it with. */
  if (geteuid() == 0 && fchown(fd, a->st.st_uid, a->st.st_gid) < 0) {
    fail_errno(a, "set the owner of", *tmp);
    close(fd);
    unlink(*tmp);
    return -1;
  }
  return fd;
}

static int replace_file(appender *a, const buf_t *out) {
  char *tmp;
  int rc = -1, fd = make_temp(a, &tmp);
  if (fd < 0) {
    free(tmp);
    return -1;
  }
  struct stat st;
  if (write_all(fd, out->data, out->len) < 0 || (a->flush && fsync(fd) < 0) || fstat(fd, &st) < 0) {
    fail_errno(a, "write", tmp);
    close(fd);
  } else if (close(fd) < 0) {
    fail_errno(a, "write", tmp);
  } else if (rename(tmp, a->path) < 0) {
    char eb[128];
    const char *m = errstr(errno, eb, sizeof eb);
    fail(a, "cannot rename \"%s\" to \"%s\": %s", tmp, a->path, m);
  } else {
    rc = 0;
    mark_clean(st.st_dev, st.st_ino, (off_t)out->len, out->data, out->len);
  }
  if (rc) unlink(tmp);
  free(tmp);
  if (rc == 0 && a->flush) sync_dir(a->path);
  return rc;
}

/* Header = old columns plus those of t it lacks, in csv_column_cmp order; old rows, then new rows.
 * The header is mapped again from the whole file as read now: sizes come from what was read. */
static int rewrite(appender *a) {
  int ended;
  if (read_more(a, 1)) return -1;
  doc_reset(&a->d);
  parse(&a->d, a->raw.data, a->raw.len, 0, &ended);
  assert(a->d.nrows > 0);
  long *newpos = xmalloc(a->t->ncols * sizeof *newpos);
  size_t missing, h = row_len(&a->d, 0), n = h;
  outcol *oc = map_header(a, newpos, &missing); /* room for h + t->ncols */
  for (size_t c = 0; c < a->t->ncols; c++)
    if (newpos[c] < 0) oc[n++] = (outcol){a->t->cols[c], strlen(a->t->cols[c]), -1, (long)c};
  assert(n == h + missing);
  int rc = check_old(a, oc, h);
  if (rc == 0) {
    qsort(oc, n, sizeof *oc, outcol_cmp);
    buf_t out;
    buf_init(&out);
    put_header(&out, oc, n);
    put_old_rows(&out, &a->d, oc, n);
    put_new_rows(&out, a->t, oc, n, 0, SIZE_MAX);
    rc = replace_file(a, &out);
    buf_free(&out);
  }
  free(oc);
  free(newpos);
  return rc;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_table(appender *a) {
  const csv_table *t = a->t;
  const char **names = xmalloc(t->ncols * sizeof *names);
  int rc = 0;
  for (size_t c = 0; c < t->ncols; c++) names[c] = t->cols[c];
  qsort(names, t->ncols, sizeof *names, name_cmp);
  for (size_t c = 1; c < t->ncols && !rc; c++)
    if (strcmp(names[c], names[c - 1]) == 0)
      rc = fail(a, "cannot append to \"%s\": column \"%s\" given twice", a->path, names[c]);
  free(names);
  return rc;
}

static int append_or_rewrite(appender *a) {
  if (read_header(a)) return -1;
  if (a->d.nrows == 0) return write_new_file(a); /* missing, empty or only blank lines */
  long *newpos = xmalloc(a->t->ncols * sizeof *newpos);
  size_t missing;
  outcol *oc = map_header(a, newpos, &missing);
  int rc = 0;
  if (missing == 0) {
    /* The common case: only the header was read, and rows go in its order. */
    buf_t out;
    buf_init(&out);
    rc = append_bytes(a, &out, oc, row_len(&a->d, 0));
    buf_free(&out);
  }
  free(oc);
  free(newpos);
  return missing == 0 ? rc : rewrite(a);
}

int csv_append(const char *path, const csv_table *t, int flush, char *err, size_t errlen) {
  appender a;
  memset(&a, 0, sizeof a);
  a.path = path, a.t = t, a.flush = flush, a.err = err, a.errlen = errlen, a.fd = -1;
  if (t->nrows == 0 || t->ncols == 0) return 0;
  if (check_table(&a) || open_target(&a)) {
    if (a.fd >= 0) close(a.fd);
    return -1;
  }
  int rc = append_or_rewrite(&a);
  if (a.fd >= 0) close(a.fd);
  buf_free(&a.raw);
  doc_free(&a.d);
  return rc;
}
