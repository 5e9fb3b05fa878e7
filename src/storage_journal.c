/* storage_journal.c: the SQLite storage's journal file (see storage_journal.h).
 *
 * An entry: magic u32 "EVJ1", payload length u32, number u64, the payload's checksum u64, the
 * header's u64 (so that a damaged length is damage, not a write cut short), then the payload.
 * Native byte order: a journal is read back on the machine that wrote it (as SQLite's WAL index
 * is), by whoever opens the database beside it next. A zero magic ends the log. */
#include "storage_journal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"

#define MAGIC 0x314a5645u /* "EVJ1" */
#define HEADER 32
#define SUFFIX "-evl-"
#define TOKEN_LEN 16

/* Over the payload, 8 bytes a step: about a cycle a byte, on every gather's path. Not a defence
 * against tampering (whoever can write the journal can write the database): it tells damaged
 * bytes from an entry. */
static uint64_t checksum(uint64_t seq, const char *p, size_t n) {
  const uint64_t prime = 0x100000001b3ull;
  uint64_t h = 0xcbf29ce484222325ull ^ seq ^ ((uint64_t)n << 40);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * prime;
    h ^= h >> 29;
  }
  uint64_t w = 0;
  memcpy(&w, p + i, n - i);
  h = (h ^ w ^ (n - i)) * prime;
  return h ^ (h >> 32);
}

/* Of a header: its length and number, so that a changed length does not pass for a cut. */
static uint64_t head_sum(uint32_t len, uint64_t seq) {
  uint64_t h = (seq ^ 0x9e3779b97f4a7c15ull) * 0x100000001b3ull ^ len;
  return (h * 0xff51afd7ed558ccdull) ^ (h >> 31);
}

void journal_init(journal_t *j, const char *db_path, const char *db_id, const char *token) {
  memset(j, 0, sizeof *j);
  j->fd = -1;
  j->ring = JOURNAL_RING;
  if (!db_path[0] || strcmp(db_path, ":memory:") == 0) return;
  assert(strlen(db_id) == TOKEN_LEN && strlen(token) == TOKEN_LEN);
  int n = snprintf(j->path, sizeof j->path, "%s" SUFFIX "%s-%s", db_path, db_id, token);
  if (n < 0 || (size_t)n >= sizeof j->path) {
    j->path[0] = '\0'; /* a path too long for a journal: every store commits */
    return;
  }
  j->name = j->path + n - TOKEN_LEN;
}

int journal_usable(const journal_t *j) { return j->path[0] && !j->broken; }

/* Whether a file system of type t writes every block anew (btrfs, ZFS, bcachefs): an allocated
 * block is no promise for its next write there, and a store into a mapped page that cannot get a
 * block on a full disk is SIGBUS, which would end the process. */
static int copies_on_write(long t) {
  return t == 0x9123683eL /* btrfs */ || t == 0x2fc12fc1L /* zfs */ || t == 0xca451a4eL /* bcachefs */;
}

/* The file just made at fd, allocated to its full size (so that no store into the mapping ever
 * needs a block: on a full disk that would be SIGBUS, not an error) and mapped. */
static int allocate(journal_t *j, int fd, char *err, size_t errlen) {
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0 && copies_on_write(fs.f_type)) {
    snprintf(err, errlen, "the journal %s is on a copy-on-write file system: rounds are committed", j->path);
    return -1;
  }
  int rc;
  while ((rc = posix_fallocate(fd, 0, (off_t)j->ring)) == EINTR) {
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot allocate the journal %s: %s", j->path, strerror(rc));
    return -1;
  }
  void *map = mmap(NULL, j->ring, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    snprintf(err, errlen, "cannot map the journal %s: %s", j->path, strerror(errno));
    return -1;
  }
  j->map = map;
  j->pos = 0;
  return 0;
}

/* Make the file: new (never a planted one or a link), with the user's umask and never
 * world-writable, and locked before anything is in it. A replay that found it empty and unlocked
 * in between removes it: make it again then. One that cannot be allocated or mapped is removed,
 * and j is broken. */
static int create(journal_t *j, char *err, size_t errlen) {
  for (int tries = 0; tries < 3; tries++) {
    int fd = open(j->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      snprintf(err, errlen, "cannot create the journal %s: %s", j->path, strerror(errno));
      return -1;
    }
    struct stat st;
    int rc;
    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
    }
    if (rc == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
      if (allocate(j, fd, err, errlen) == 0) {
        j->fd = fd;
        return 0;
      }
      j->broken = 1;
      rc = -1;
    }
    if (rc != 0) (void)unlink(j->path); /* not locked, or not usable: not left for anyone to trip on */
    (void)close(fd); /* nothing written: nothing to lose */
    if (j->broken) return -1;
  }
  snprintf(err, errlen, "cannot create the journal %s: it was removed as it was made", j->path);
  return -1;
}

int journal_append(journal_t *j, const void *payload, size_t n, char *err, size_t errlen) {
  assert(journal_usable(j));
  if (n > UINT32_MAX) {
    snprintf(err, errlen, "a journal entry of %zu bytes is too long", n);
    return -1;
  }
  if (!j->map && create(j, err, errlen)) return -1;
  size_t need = HEADER + n; /* and a header's room after it: the end mark */
  if (j->pos + need + HEADER > j->ring && j->unfolded == 0 && j->pos > 0) {
    /* every entry is folded: the next lap starts at the front, its first header zeroed before
     * anything else of it is written (an entry of the last lap there would read as damaged) */
    memset(j->map, 0, HEADER);
    atomic_thread_fence(memory_order_release);
    j->pos = 0;
  }
  if (j->pos + need + HEADER > j->ring) {
    snprintf(err, errlen, "the journal %s is full", j->path);
    return -1;
  }
  uint32_t head[2] = {MAGIC, (uint32_t)n};
  uint64_t seq = j->seq + 1, sum = checksum(seq, payload, n), hsum = head_sum((uint32_t)n, seq);
  char h[HEADER];
  memcpy(h, head, sizeof head);
  memcpy(h + 8, &seq, 8);
  memcpy(h + 16, &sum, 8);
  memcpy(h + 24, &hsum, 8);
  /* The header at pos is zero (the last entry's end mark, or zeroed above): until the magic is
   * written last, a kill leaves the log ending there. */
  char *m = j->map + j->pos;
  memset(m + need, 0, HEADER);
  memcpy(m + HEADER, payload, n);
  memcpy(m + 4, h + 4, HEADER - 4);
  atomic_thread_fence(memory_order_release);
  memcpy(m, h, 4);
  if (j->unfolded == 0) j->since = clock_now();
  j->unfolded += need;
  j->pos += need;
  j->seq = seq;
  return 0;
}

const char *journal_unfolded(const journal_t *j) { return j->map ? j->map + j->pos - j->unfolded : ""; }

void journal_folded(journal_t *j) { j->unfolded = 0; }

static void unmap(journal_t *j) {
  if (j->map) (void)munmap(j->map, j->ring);
  j->map = NULL;
}

int journal_close(journal_t *j) {
  unmap(j);
  int removed = 0;
  if (j->fd >= 0) {
    /* removed while still locked, so that a replay waiting for the lock finds it gone */
    removed = j->unfolded == 0 && unlink(j->path) == 0;
    (void)close(j->fd);
    j->fd = -1;
  }
  return removed;
}

void journal_forget(journal_t *j) {
  unmap(j);
  if (j->fd >= 0) (void)close(j->fd); /* the parent's descriptor keeps the lock */
  j->fd = -1;
}

/* Zero, or the magic part written: the end of the log. The magic is written last, with one store
 * where a 4-byte copy is one (x86-64, aarch64); where it is not, a kill may leave some of its
 * bytes, never other ones. */
static int magic_unwritten(uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) {
    uint32_t byte = (v >> shift) & 0xff;
    if (byte != 0 && byte != ((MAGIC >> shift) & 0xff)) return 0;
  }
  return 1;
}

int journal_next(const char **p, const char *end, uint64_t *seq, const char **payload, size_t *n) {
  size_t left = (size_t)(end - *p);
  if (left == 0) return 0;
  uint32_t head[2] = {0, 0};
  memcpy(head, *p, left < sizeof head ? left : sizeof head);
  if (left >= 4 && head[0] != MAGIC) return magic_unwritten(head[0]) ? 0 : -1;
  if (left < HEADER) return 0; /* cut short: the end of a killed write */
  uint64_t sum, hsum;
  memcpy(seq, *p + 8, 8);
  memcpy(&sum, *p + 16, 8);
  memcpy(&hsum, *p + 24, 8);
  if (hsum != head_sum(head[1], *seq)) return -1;
  if (left - HEADER < head[1]) return 0;
  if (sum != checksum(*seq, *p + HEADER, head[1])) return -1;
  *payload = *p + HEADER;
  *n = head[1];
  *p += HEADER + head[1];
  return 1;
}

/* ---- replay: the journals of writers that died ---------------------------------------------- */

/* Whether name is "<base>-evl-<db_id>-<16 hex digits>": a journal of this database (one left
 * by a database of the same name that was removed is not, and is left alone). */
static int is_journal(const char *name, const char *base, size_t base_len, const char *db_id) {
  size_t n = strlen(name), sl = sizeof SUFFIX - 1;
  const char *id = name + base_len + sl;
  if (n != base_len + sl + TOKEN_LEN + 1 + TOKEN_LEN || memcmp(name, base, base_len) != 0 ||
      memcmp(name + base_len, SUFFIX, sl) != 0 || memcmp(id, db_id, TOKEN_LEN) != 0 || id[TOKEN_LEN] != '-')
    return 0;
  for (const char *c = id + TOKEN_LEN + 1; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
  return 1;
}

typedef struct dead {
  int fd;
  const char *token; /* its handle's token, in the list of names */
  char path[4096];
} dead_t;

enum { NOT_DEAD = -1, HELD = -2 };

/* Open, check and lock the journal at path if it is a dead writer's: returns its fd, HELD when a
 * live handle (or a replay) holds it, or NOT_DEAD: gone meanwhile, a link, not a regular file of
 * this user, or removed by a replay before this one. */
static int take_dead(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return NOT_DEAD;
  struct stat st;
  int rc = NOT_DEAD;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) {
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) rc = HELD;
    else if (fstat(fd, &st) == 0 && st.st_nlink > 0) return fd;
  }
  (void)close(fd);
  return rc;
}

/* The whole file at fd into b. */
static int read_file(int fd, buf_t *b) {
  b->len = 0;
  for (;;) {
    char *p = buf_reserve(b, 65536);
    ssize_t r = read(fd, p, 65536);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return 0;
    b->len += (size_t)r;
  }
}

/* Split db_path into its directory (into dir) and base name. */
static const char *split_path(const char *db_path, char *dir, size_t dirlen) {
  const char *slash = strrchr(db_path, '/');
  if (!slash) {
    snprintf(dir, dirlen, ".");
    return db_path;
  }
  snprintf(dir, dirlen, "%.*s", slash == db_path ? 1 : (int)(slash - db_path), db_path);
  return slash + 1;
}

/* The journals of the database in dir: their names into names (NUL-separated); how many. */
static size_t list_journals(DIR *d, const char *base, const char *db_id, buf_t *names) {
  size_t base_len = strlen(base), n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (is_journal(de->d_name, base, base_len, db_id)) {
      buf_add(names, de->d_name, strlen(de->d_name) + 1);
      n++;
    }
  return n;
}

/* Lock, read and fold each dead journal named in names (name_at: where its token starts), in the
 * transaction the caller began (so a replay holds a journal's lock only while it holds the
 * database's write lock, which is what probe's callers wait on), then commit and remove them. A
 * journal still held by someone else after a few tries is a live writer's (a probe holds one for
 * a moment; replays wait for the write lock). */
static int fold_dead(const char *dir, const buf_t *names, size_t count, size_t name_at, const journal_replay_ops *ops,
                     void *ctx, char *err, size_t errlen) {
  dead_t *taken = xmalloc(count * sizeof *taken);
  size_t ntaken = 0;
  int rc = 0;
  buf_t bytes;
  buf_init(&bytes);
  for (const char *name = names->data; rc == 0 && name < names->data + names->len; name += strlen(name) + 1) {
    dead_t one;
    if ((size_t)snprintf(one.path, sizeof one.path, "%s/%s", dir, name) >= sizeof one.path) continue;
    /* held: a live writer's, or another process's probe for a moment */
    for (int tries = 0; (one.fd = take_dead(one.path)) == HELD && tries < 5; tries++) clock_sleep(0.001);
    if (one.fd < 0) continue;
    one.token = name + name_at;
    taken[ntaken++] = one;
    if (read_file(one.fd, &bytes) != 0) {
      snprintf(err, errlen, "cannot read the journal %s: %s", one.path, strerror(errno));
      rc = -1;
    } else if (bytes.len > 0) {
      rc = ops->fold(ctx, one.token, bytes.data, bytes.len, one.path, err, errlen);
    }
  }
  rc = ops->end(ctx, rc, err, errlen);
  for (size_t i = 0; i < ntaken; i++) {
    /* folded and committed; a failed unlink is folded again by number (its record stays): no harm */
    int removed = rc == 0 && unlink(taken[i].path) == 0;
    (void)close(taken[i].fd);
    if (removed) ops->forget(ctx, taken[i].token);
  }
  free(taken);
  buf_free(&bytes);
  return rc;
}

/* Whether one of the journals named in names is dead (its lock free), and whether one is held. */
static void probe(const char *dir, const buf_t *names, int *dead, int *held) {
  *dead = *held = 0;
  for (const char *name = names->data; name < names->data + names->len; name += strlen(name) + 1) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) continue;
    int fd = take_dead(path);
    if (fd == HELD) *held = 1;
    if (fd >= 0) {
      *dead = 1;
      (void)close(fd); /* unlocks it: fold_dead takes it again under the write lock */
    }
  }
}

int journal_replay(const char *db_path, const char *db_id, const journal_replay_ops *ops, void *ctx, char *err,
                   size_t errlen) {
  char dir[4096];
  const char *base = split_path(db_path, dir, sizeof dir);
  if (!base[0] || strcmp(db_path, ":memory:") == 0) return 0;
  DIR *d = opendir(dir);
  if (!d) return 0; /* not listable by this process: a process that can list it folds them */
  buf_t names;
  buf_init(&names);
  size_t count = list_journals(d, base, db_id, &names);
  (void)closedir(d);
  int rc = 0, dead = 0, held = 0;
  if (count > 0) probe(dir, &names, &dead, &held);
  if (dead) {
    rc = ops->begin(ctx, err, errlen);
    if (rc == 0) rc = fold_dead(dir, &names, count, strlen(base) + sizeof SUFFIX - 1 + TOKEN_LEN + 1, ops, ctx, err, errlen);
  } else if (held) {
    /* A live writer's, or one a replay is folding under the write lock: taking that lock waits for
     * the replay to commit, so that what it folds is seen. A wait that fails (a read-only file)
     * only means no replay can be under way from here. */
    char ignored[256];
    if (ops->begin(ctx, ignored, sizeof ignored) == 0) (void)ops->end(ctx, -1, ignored, sizeof ignored);
  }
  buf_free(&names);
  return rc;
}
