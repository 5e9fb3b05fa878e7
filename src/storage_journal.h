/* storage_journal.h: the SQLite storage's journal, a file beside the database that a fast search
 * loop appends to instead of committing every gather.
 *
 * A commit per gather costs system calls (WAL frames, locks) that a loop of 5 µs jobs cannot pay;
 * so did a write() per gather (on a 2-core VM it was most of what storing a job cost). The journal
 * is a file of fixed size mapped into memory (MAP_SHARED), its blocks allocated when it is made:
 * an entry is copied into the mapping, which is the page cache, so it survives kill -9 of any
 * process as a WAL commit does (not a power cut: neither does a synchronous=NORMAL commit), and
 * costs no system call. The storage folds the journal into the database in one transaction every
 * few tens of milliseconds, before it waits, before it reads, and at close; a writer that died
 * leaves its journal to whoever opens the database next (journal_replay).
 *
 * The file is a ring: once every entry in it is folded, the next starts again at its front. The
 * log ends at the first header whose magic is zero: a new entry's space is marked so before its
 * payload is copied, and its magic is written last, so that an entry a kill interrupted is never
 * read, nor anything of an earlier lap behind it.
 *
 * One journal per open handle, named "<database>-evl-<database id>-<16 hex digits>" (the id: a
 * random one the database holds, so that a journal left beside a database that was removed is
 * never folded into a new one of the same name), held under flock(LOCK_EX) while its handle lives:
 * a journal nobody holds is a dead writer's. Entries are numbered from 1 and framed with their
 * length and checksums; the database records, in the transaction that folds them, the number of
 * the last one folded, so that no entry is folded twice, whatever moment a process dies at. This
 * file knows the framing only: what an entry holds is the storage's (storage_sqlite.c). */
#ifndef EVL_STORAGE_JOURNAL_H
#define EVL_STORAGE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

/* The size of a journal file (journal_t.ring): a fold comes well before (FOLD_BYTES in
 * storage_sqlite.c). */
#define JOURNAL_RING ((size_t)8 << 20)

typedef struct journal {
  int fd;           /* -1 until the first append */
  int broken;       /* the file could not be made whole: every store commits */
  char path[4096];  /* "" when the database has no file (":memory:"): no journal */
  const char *name; /* the handle's token within path: what the database records */
  uint64_t seq;     /* the number of the last entry appended */
  size_t ring;      /* the file's size (JOURNAL_RING; a test makes it small before the first append) */
  char *map;        /* the file, mapped; NULL until the first append */
  size_t pos;       /* where the next entry goes in it */
  size_t unfolded;  /* bytes of entries appended and not folded yet: the file's last before pos
                       (a new lap starts only once they are folded), journal_unfolded */
  double since;     /* clock_now() at the first unfolded entry */
} journal_t;

/* Set j up for the database at db_path whose id is db_id, with the handle's token (16 hex digits
 * each); no file is made yet. A db_path of "" or ":memory:": no journal. */
void journal_init(journal_t *j, const char *db_path, const char *db_id, const char *token);

/* Whether j can take entries (a file database, no failed append left behind). */
int journal_usable(const journal_t *j);

/* Append one entry of the n bytes at payload: copied into the file (created, allocated, mapped and
 * locked on the first append), where the fold reads it (journal_unfolded).
 * Returns 0, or -1 with err saying why, the log as before: the file cannot be made (then j is
 * broken when it was made but could not be allocated or mapped), or the entry does not fit in
 * what the unfolded entries leave of the ring (fold them, or commit it another way). */
int journal_append(journal_t *j, const void *payload, size_t n, char *err, size_t errlen);

/* The j->unfolded bytes of entries not folded yet, as they are in the file (journal_next reads
 * them); valid until the next append. */
const char *journal_unfolded(const journal_t *j);

/* The unfolded entries are in the database now (the transaction that says so committed). */
void journal_folded(journal_t *j);

/* Remove the file (only when nothing in it waits to be folded: otherwise the next process to open
 * the database folds it) and free j. Returns 1 when this call removed the file: then, and only
 * then, the database's record of how far it was folded may go (the file cannot come back to be
 * folded twice); 0 otherwise (already closed, left for a replay, or not removable). */
int journal_close(journal_t *j);

/* Close j's copy of the file and free j, leaving the file as it is: in a forked child, whose
 * parent's handle owns the journal (the lock stays the parent's). */
void journal_forget(journal_t *j);

/* Read the entry at *p (end: the end of the bytes): its number, payload and length, and move *p
 * past it. Returns 1, 0 at the end of the log (a header whose magic is zero, or the end of the
 * bytes, also inside an entry: a file cut short), or -1 when the bytes are damaged. */
int journal_next(const char **p, const char *end, uint64_t *seq, const char **payload, size_t *n);

/* What journal_replay asks of the storage. None may longjmp.
 * begin: start the transaction the dead journals are folded in (once there is a journal file);
 * fold: fold the n bytes of the journal named name (its handle's token; the file is at path) in it;
 * end: commit it when rc is 0, else roll it back; returns 0 once committed.
 * Each returns 0, or -1 with err saying why.
 * forget: the journal named name was folded, committed and removed: its record may go (after the
 * removal, never before: a record gone with the file still there would fold it twice). Best
 * effort: a record left behind is harmless. */
typedef struct journal_replay_ops {
  int (*begin)(void *ctx, char *err, size_t errlen);
  int (*fold)(void *ctx, const char *name, const char *bytes, size_t n, const char *path, char *err, size_t errlen);
  int (*end)(void *ctx, int rc, char *err, size_t errlen);
  void (*forget)(void *ctx, const char *name);
} journal_replay_ops;

/* Fold the journals of dead writers of the database at db_path (id db_id), in one transaction:
 * each journal file of it that is a regular file of this user and that no live handle holds is
 * locked, read and folded; once that commits, the files are removed. The transaction is begun only
 * for a journal that holds something. Two processes replaying at once never fold one journal twice
 * (the lock, then a check that the file is still there; and the numbers the database records).
 * Returns 0, or -1 with err naming the file. */
int journal_replay(const char *db_path, const char *db_id, const journal_replay_ops *ops, void *ctx, char *err,
                   size_t errlen);

#endif
