/* sqlite_wal.c: a VFS over SQLite's default one that writes each transaction's WAL frames with one write */
/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sqlite.h"

/* SQLite writes a WAL frame as two write(2) calls, its 24-byte header and
 * then the page, so a W1 append (4-5 B-tree pages) made about 10 system
 * calls, and a 100-event append over 50. On a VM where a system call costs
 * microseconds, those were the largest part of an append with synchronous
 * = NORMAL (no fsync per commit). This VFS keeps what the WAL file is given
 * in a buffer while the frames come in order at its end, and writes it in
 * one call when the commit frame is complete: before SQLite publishes the
 * transaction in the WAL index, so other connections never see a frame
 * that is not in the file, and with the write's error returned to the
 * commit, which then fails as it would have without the buffer.
 *
 * The WAL file format (sqlite.org/fileformat2.html#walformat) is what the
 * rules below rely on: a 32-byte file header at offset 0 starts a new WAL
 * generation; each frame is a 24-byte header then one page; bytes 4-7 of a
 * frame header are not zero only in a transaction's commit frame.
 *
 * - A write at or past the end of what this connection has written, with
 *   no commit frame open, is buffered (contiguous with the buffer, or the
 *   buffer is written first).
 * - A write below that end (SQLite rewriting a frame of the transaction in
 *   place, or rewriting checksums) writes the buffer, then itself.
 * - Once a commit frame's header is seen, the buffer and everything after
 *   it are written at once, until the next non-commit frame header.
 * - Reads, syncs, size queries, truncation, file controls and close write
 *   the buffer first, so the file is always what SQLite believes it is.
 * - When the connection gives up the WAL write lock, what is still buffered
 *   belongs to a transaction that was rolled back (its frames lie past the
 *   WAL's published end) and is dropped: written later, it could land on
 *   frames another connection committed in between.
 *
 * That last rule needs the database file's lock calls, so a main database
 * file gets a pass-through layer too, and is paired with its WAL file
 * through the filename SQLite hands to both (sqlite3_filename_database).
 * A WAL file without a pair is written through, unbuffered. Other files
 * (journals, temporary files) are the default VFS's own, opened in place
 * with no layer in between.
 *
 * Reads of the WAL go through a read-only shared map of the file while the
 * database has a memory map (PRAGMA mmap_size > 0, learnt from the file
 * control SQLite sends the database file): SQLite maps the database file
 * itself but reads every WAL frame with pread(2), one system call per page
 * that is not in the page cache, and a checkpoint reads every frame it
 * copies. A map covers the database's mmap_size from offset 0 and is made
 * once per WAL file (the kernel keeps it coherent with the writes);
 * frames beyond it are read with pread. A read through the map only
 * touches bytes the file is known to hold: its size is asked again (one
 * fstat) when a read reaches past what is known, and what is known is
 * forgotten whenever the connection takes a WAL lock, so a WAL another
 * process cut short is never touched past its end (that would raise
 * SIGBUS); a read past the end then goes to pread, which reports it.
 *
 * A sync of the WAL by the connection that holds its write lock (each
 * commit's, with synchronous = FULL) first writes zeros past the file's end
 * up to the next WAL_GROW boundary after the frames (wal_grow). Each
 * fdatasync that also has to record a new file size costs ext4 a journal
 * commit: 360 against 190 us a sync (strace, W1 FULL), and a fresh store's
 * WAL grows for its first few thousand single appends (until the WAL
 * reaches wal_autocheckpoint and starts over from its beginning). With the
 * file grown a megabyte at a time, one sync in about 85 records a size.
 * Zeros past the last frame are what a WAL may hold there anyway: frames of
 * an older generation, which the salts in their headers disown, and which
 * recovery and readers never take for frames. Only bytes past the file's
 * size are written, and only under the write lock, when no other
 * connection can be writing there. */

#define WALBUF_VFS "eventstore-wal"
/* Larger transactions go out in pieces of at most this much: the unix VFS
 * writes at most 128 KB - 1 per call (seekAndWrite masks the length with
 * 0x1ffff). */
#define WALBUF_MAX (124u << 10)
#define WAL_HDR 32
#define FRAME_HDR 24
/* the WAL file grows by this much at a time under synced commits */
#define WAL_GROW (1 << 20)

typedef struct db_file db_file;

typedef struct wal_file {
    sqlite3_file base;          /* first: SQLite sees an sqlite3_file */
    sqlite3_file *real;         /* the default VFS's file, right after this struct */
    db_file *db;                /* its database file; NULL: write through */
    unsigned char *buf;
    size_t len;                 /* bytes in buf, for the file from offset off */
    sqlite3_int64 off;
    sqlite3_int64 end;          /* end of the highest write since the WAL header */
    int commit;                 /* a commit frame is being written: write through */
    const char *path;           /* the WAL file's name, to map it */
    const unsigned char *map;   /* its read-only map, or NULL */
    sqlite3_int64 map_len;      /* the map's length: the database's mmap_size then */
    sqlite3_int64 known;        /* the file holds at least this many bytes */
    sqlite3_int64 grown;        /* its size when wal_grow last looked, or made it */
    int map_failed;             /* mapping failed: pread only */
} wal_file;

/* A main database file, listed while open so its WAL file can find it. */
struct db_file {
    sqlite3_file base;
    sqlite3_file *real;
    const char *name;           /* the filename pointer SQLite opened it with */
    wal_file *wal;
    sqlite3_int64 mmap_limit;   /* the database's mmap_size: the WAL map's length */
    int write_locked;           /* this connection holds the WAL write lock */
    db_file *next;
};

static db_file *db_files;
static pthread_mutex_t db_files_lock = PTHREAD_MUTEX_INITIALIZER;

static sqlite3_vfs wal_vfs;
static unsigned long map_reads;     /* reads served by a map, for the checks */
static sqlite3_vfs *wal_real;
static pthread_once_t wal_once = PTHREAD_ONCE_INIT;

static int wal_flush(wal_file *f) {
    int rc;
    if (!f->len) return SQLITE_OK;
    rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
    if (rc == SQLITE_OK && f->off + (sqlite3_int64)f->len > f->known) f->known = f->off + (sqlite3_int64)f->len;
    /* written or failed, these bytes are not retried: a failed commit is
     * rolled back, and SQLite rewrites what it still needs */
    f->len = 0;
    return rc;
}

static int wal_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off) {
    wal_file *f = (wal_file *)pf;
    const unsigned char *b = p;
    int rc;
    if (off == 0 && n == WAL_HDR) {
        /* a new WAL generation: frames start again after this header */
        if ((rc = wal_flush(f)) != SQLITE_OK) return rc;
        f->end = 0;
        f->commit = 0;
    } else if (n == FRAME_HDR) {
        f->commit = (b[4] | b[5] | b[6] | b[7]) != 0;
    }
    /* (no memory for the buffer: written through, below) */
    if (f->db && off >= f->end && n > 0 && (size_t)n <= WALBUF_MAX &&
        (f->buf || (f->buf = sqlite3_malloc(WALBUF_MAX)) != NULL)) {
        if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WALBUF_MAX) &&
            (rc = wal_flush(f)) != SQLITE_OK)
            return rc;
        if (!f->len) f->off = off;
        memcpy(f->buf + f->len, p, (size_t)n);
        f->len += (size_t)n;
        f->end = off + n;
        /* the commit frame's page completes the transaction: out now */
        return f->commit && n != FRAME_HDR ? wal_flush(f) : SQLITE_OK;
    }
    if ((rc = wal_flush(f)) != SQLITE_OK) return rc;
    if (off + n > f->end) f->end = off + n;
    rc = f->real->pMethods->xWrite(f->real, p, n, off);
    if (rc == SQLITE_OK && off + n > f->known) f->known = off + n;
    return rc;
}

static void wal_unmap(wal_file *f) {
    if (f->map) munmap((void *)f->map, (size_t)f->map_len);
    f->map = NULL;
    f->map_len = 0;
}

/* Whether bytes [0, upto) of the WAL can be read through its map: (re)made
 * when the database's mmap_size changed, and only over bytes the file is
 * known to hold. */
static int wal_mapped(wal_file *f, sqlite3_int64 upto) {
    sqlite3_int64 limit = f->db && sizeof(size_t) >= 8 ? f->db->mmap_limit : 0, size;
    if (limit != f->map_len && (f->map || !f->map_failed)) {
        wal_unmap(f);
        if (limit > 0 && f->path) {
            int fd = open(f->path, O_RDONLY | O_CLOEXEC);
            void *m = fd < 0 ? MAP_FAILED : mmap(NULL, (size_t)limit, PROT_READ, MAP_SHARED, fd, 0);
            /* no lock is ever taken on a WAL file, so closing this
             * descriptor releases none of SQLite's */
            if (fd >= 0) close(fd);
            if (m == MAP_FAILED) {
                f->map_failed = 1;
            } else {
                f->map = m;
                f->map_len = limit;
            }
        }
    }
    if (!f->map || upto > f->map_len) return 0;
    if (upto > f->known) {
        if (f->real->pMethods->xFileSize(f->real, &size) != SQLITE_OK) return 0;
        f->known = size;
    }
    return upto <= f->known;
}

static int wal_close(sqlite3_file *pf) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f), rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    wal_unmap(f);
    pthread_mutex_lock(&db_files_lock);
    if (f->db) f->db->wal = NULL;
    f->db = NULL;
    pthread_mutex_unlock(&db_files_lock);
    sqlite3_free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wal_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f);
    if (rc != SQLITE_OK) return rc;
    if (n > 0 && off >= 0 && wal_mapped(f, off + n)) {
        memcpy(p, f->map + off, (size_t)n);
#if defined(__GNUC__)
        __atomic_add_fetch(&map_reads, 1, __ATOMIC_RELAXED); /* connections of other threads count too */
#else
        map_reads++;
#endif
        return SQLITE_OK;
    }
    return f->real->pMethods->xRead(f->real, p, n, off);
}

static int wal_truncate(sqlite3_file *pf, sqlite3_int64 size) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f);
    if (rc != SQLITE_OK) return rc;
    if (f->end > size) f->end = size;
    if (f->known > size) f->known = size;
    if (f->grown > size) f->grown = size;
    return f->real->pMethods->xTruncate(f->real, size);
}

/* Zeros from the file's end to the WAL_GROW boundary past the frames, with
 * the write lock held (see above), and never past the process's file size
 * limit (a write there would raise SIGXFSZ). The file's size is asked only
 * when the frames pass what this layer last grew it to: an fstat before
 * each fdatasync made W1 FULL 20% slower here. Best effort: on an error
 * the file keeps what was written, and the sync that follows grows it as
 * it would have. */
static void wal_grow(wal_file *f) {
    static unsigned char zeros[64 << 10];   /* never written: stays zero */
    sqlite3_int64 size, to = (f->end / WAL_GROW + 1) * WAL_GROW;
    struct rlimit rl;
    if (!f->db || !f->db->write_locked || f->end <= f->grown) return;
    if (f->real->pMethods->xFileSize(f->real, &size) != SQLITE_OK) return;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (sqlite3_int64)rl.rlim_cur < to)
        to = (sqlite3_int64)rl.rlim_cur;
    while (size < to) {
        int n = to - size < (sqlite3_int64)sizeof zeros ? (int)(to - size) : (int)sizeof zeros;
        if (f->real->pMethods->xWrite(f->real, zeros, n, size) != SQLITE_OK) break;
        size += n;
    }
    f->grown = size > f->end ? size : f->end;
    if (size > f->known) f->known = size;
}

static int wal_sync(sqlite3_file *pf, int flags) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f);
    if (rc != SQLITE_OK) return rc;
    wal_grow(f);
    return f->real->pMethods->xSync(f->real, flags);
}

static int wal_file_size(sqlite3_file *pf, sqlite3_int64 *size) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wal_file_control(sqlite3_file *pf, int op, void *arg) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

/* The rest passes through (the db_ functions below): SQLite takes no lock
 * on a WAL file and never asks the default VFS to map one (the map above is
 * this layer's own), but it may still ask. */
static int wal_fetch(sqlite3_file *pf, sqlite3_int64 off, int n, void **out) {
    wal_file *f = (wal_file *)pf;
    int rc = wal_flush(f);
    *out = NULL;
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, n, out);
}


/* The database file: every call passes through; giving up the WAL write
 * lock drops what its WAL file still buffers (see the rules above). */
/* wal_file and db_file both begin with these two */
typedef struct layer {
    sqlite3_file base;
    sqlite3_file *real;
} layer;
#define REAL(pf) (((layer *)(pf))->real)

static int db_close(sqlite3_file *pf) {
    db_file *d = (db_file *)pf, **p;
    pthread_mutex_lock(&db_files_lock);
    for (p = &db_files; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    if (d->wal) d->wal->db = NULL;
    d->wal = NULL;
    pthread_mutex_unlock(&db_files_lock);
    return REAL(pf)->pMethods->xClose(REAL(pf));
}

static int db_shm_lock(sqlite3_file *pf, int offset, int n, int flags) {
    db_file *d = (db_file *)pf;
    int rc;
    /* another process may have cut the WAL short before this lock */
    if ((flags & SQLITE_SHM_LOCK) && d->wal) d->wal->known = 0;
    /* offset 0 is the WAL write lock (WAL_WRITE_LOCK in SQLite's wal.c) */
    if ((flags & SQLITE_SHM_UNLOCK) && offset == 0 && n >= 1) {
        d->write_locked = 0;
        if (d->wal) {
            d->wal->len = 0;
            d->wal->commit = 0;
        }
    }
    rc = REAL(pf)->pMethods->xShmLock(REAL(pf), offset, n, flags);
    if (rc == SQLITE_OK && (flags & SQLITE_SHM_LOCK) && (flags & SQLITE_SHM_EXCLUSIVE) && offset == 0 && n >= 1)
        d->write_locked = 1;
    return rc;
}

static int db_shm_lock_plain(sqlite3_file *pf, int offset, int n, int flags) {
    return REAL(pf)->pMethods->xShmLock(REAL(pf), offset, n, flags);
}
static int db_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off) {
    return REAL(pf)->pMethods->xRead(REAL(pf), p, n, off);
}
static int db_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off) {
    return REAL(pf)->pMethods->xWrite(REAL(pf), p, n, off);
}
static int db_truncate(sqlite3_file *pf, sqlite3_int64 size) {
    return REAL(pf)->pMethods->xTruncate(REAL(pf), size);
}
static int db_sync(sqlite3_file *pf, int flags) { return REAL(pf)->pMethods->xSync(REAL(pf), flags); }
static int db_file_size(sqlite3_file *pf, sqlite3_int64 *size) {
    return REAL(pf)->pMethods->xFileSize(REAL(pf), size);
}
static int db_lock(sqlite3_file *pf, int l) { return REAL(pf)->pMethods->xLock(REAL(pf), l); }
static int db_unlock(sqlite3_file *pf, int l) { return REAL(pf)->pMethods->xUnlock(REAL(pf), l); }
static int db_check_reserved(sqlite3_file *pf, int *out) {
    return REAL(pf)->pMethods->xCheckReservedLock(REAL(pf), out);
}
/* SQLITE_FCNTL_MMAP_SIZE sets the limit (clamped by the default VFS) and
 * answers the old one: the limit in force is asked back with -1. */
static int db_file_control(sqlite3_file *pf, int op, void *arg) {
    db_file *d = (db_file *)pf;
    int rc = REAL(pf)->pMethods->xFileControl(REAL(pf), op, arg);
    if (op == SQLITE_FCNTL_MMAP_SIZE && rc == SQLITE_OK) {
        sqlite3_int64 now = -1;
        if (REAL(pf)->pMethods->xFileControl(REAL(pf), op, &now) == SQLITE_OK) d->mmap_limit = now > 0 ? now : 0;
    }
    return rc;
}
static int db_sector_size(sqlite3_file *pf) { return REAL(pf)->pMethods->xSectorSize(REAL(pf)); }
static int db_device_characteristics(sqlite3_file *pf) {
    return REAL(pf)->pMethods->xDeviceCharacteristics(REAL(pf));
}
static int db_shm_map(sqlite3_file *pf, int pg, int size, int extend, void volatile **out) {
    return REAL(pf)->pMethods->xShmMap(REAL(pf), pg, size, extend, out);
}
static void db_shm_barrier(sqlite3_file *pf) { REAL(pf)->pMethods->xShmBarrier(REAL(pf)); }
static int db_shm_unmap(sqlite3_file *pf, int del) { return REAL(pf)->pMethods->xShmUnmap(REAL(pf), del); }
static int db_fetch(sqlite3_file *pf, sqlite3_int64 off, int n, void **out) {
    return REAL(pf)->pMethods->xFetch(REAL(pf), off, n, out);
}
static int db_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p) {
    return REAL(pf)->pMethods->xUnfetch(REAL(pf), off, p);
}

static const sqlite3_io_methods wal_methods = {
    3, wal_close, wal_read, wal_write, wal_truncate, wal_sync, wal_file_size, db_lock, db_unlock,
    db_check_reserved, wal_file_control, db_sector_size, db_device_characteristics,
    db_shm_map, db_shm_lock_plain, db_shm_barrier, db_shm_unmap, wal_fetch, db_unfetch,
};

static const sqlite3_io_methods db_methods = {
    3, db_close, db_read, db_write, db_truncate, db_sync, db_file_size, db_lock, db_unlock,
    db_check_reserved, db_file_control, db_sector_size, db_device_characteristics,
    db_shm_map, db_shm_lock, db_shm_barrier, db_shm_unmap, db_fetch, db_unfetch,
};

/* Both layers align the default VFS's file after themselves. */
#define LAYER_SIZE(t) ((sizeof(t) + 15) & ~(size_t)15)
#define REAL_OFF (LAYER_SIZE(wal_file) > LAYER_SIZE(db_file) ? LAYER_SIZE(wal_file) : LAYER_SIZE(db_file))

static int wal_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags, int *out_flags) {
    sqlite3_file *real = (sqlite3_file *)((char *)pf + REAL_OFF);
    int rc, wal = (flags & SQLITE_OPEN_WAL) != 0;
    (void)vfs;
    if (!wal && !(flags & SQLITE_OPEN_MAIN_DB)) return wal_real->xOpen(wal_real, name, pf, flags, out_flags);
    memset(pf, 0, REAL_OFF);
    rc = wal_real->xOpen(wal_real, name, real, flags, out_flags);
    if (rc != SQLITE_OK) {
        /* SQLite closes a file only when its methods are set */
        if (real->pMethods) real->pMethods->xClose(real);
        pf->pMethods = NULL;
        return rc;
    }
    if (real->pMethods->iVersion < 3) {
        /* an older default VFS: its own file, in place, unbuffered */
        real->pMethods->xClose(real);
        return wal_real->xOpen(wal_real, name, pf, flags, out_flags);
    }
    if (wal) {
        wal_file *f = (wal_file *)pf;
        const char *dbname = name ? sqlite3_filename_database(name) : NULL;
        db_file *d;
        f->real = real;
        f->path = name;
        pthread_mutex_lock(&db_files_lock);
        for (d = db_files; d && dbname; d = d->next)
            if (d->name == dbname && !d->wal) {
                d->wal = f;
                f->db = d;
                break;
            }
        pthread_mutex_unlock(&db_files_lock);
        pf->pMethods = &wal_methods;
    } else {
        db_file *d = (db_file *)pf;
        d->real = real;
        d->name = name;
        pthread_mutex_lock(&db_files_lock);
        d->next = db_files;
        db_files = d;
        pthread_mutex_unlock(&db_files_lock);
        pf->pMethods = &db_methods;
    }
    return SQLITE_OK;
}

static void wal_register(void) {
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real) return;
    wal_vfs = *real;            /* its methods, path limits and app data */
    wal_vfs.pNext = NULL;
    wal_vfs.zName = WALBUF_VFS;
    wal_vfs.szOsFile = (int)REAL_OFF + real->szOsFile;
    wal_vfs.xOpen = wal_open;
    wal_real = real;
    if (sqlite3_vfs_register(&wal_vfs, 0) != SQLITE_OK) wal_real = NULL;
}

/* The VFS's name, registered on first use; NULL (SQLite's default) if it
 * could not be. */
const char *sqlite_wal_vfs(void) {
    pthread_once(&wal_once, wal_register);
    return wal_real ? WALBUF_VFS : NULL;
}

/* How many WAL reads a map served so far in this process (for the checks). */
unsigned long sqlite_wal_map_reads(void) {
#if defined(__GNUC__)
    return __atomic_load_n(&map_reads, __ATOMIC_RELAXED);
#else
    return map_reads;
#endif
}
