/* SPDX-License-Identifier: MIT */
/* LUKS2 encryption in place with a data shift (system/datafs-reencrypt.c),
 * on an image file: libcryptsetup encrypts offline, without device-mapper,
 * so it runs here. A child process dies in the middle of the encryption (a
 * power cut as far as the image is concerned: nothing after its last write
 * lands); the parent resumes it, and then decrypts the data segment itself
 * (aes-xts-plain64 with the test's volume key, in sectors of 512 or 4096
 * bytes, the IV the number of the sector's first 512 bytes in the segment,
 * as dm-crypt counts for LUKS2) and compares it with what was there. */
#include <endian.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datafs-header.h"
#include "datafs-reencrypt.h"
#include "test.h"

#define MIB (1ull << 20)
#define IMAGE (96 * MIB)
#define SHIFT (32 * MIB)
#define DATA (IMAGE - SHIFT) /* what the "file system" holds; the tail is free */
#define PASS "test passphrase"

static const uint8_t volume_key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};

static uint32_t sector_size;

static int format(struct crypt_device *cd, void *userdata, struct kos_error *ret_error) {
        struct crypt_pbkdf_type pbkdf = {.type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                         .flags = CRYPT_PBKDF_NO_BENCHMARK};
        struct crypt_params_luks2 params = {.pbkdf = &pbkdf, .sector_size = sector_size};
        int r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (const char *)volume_key, sizeof volume_key,
                             &params);

        if (r < 0)
                return kos_error_set(ret_error, r, "format: %d", r);
        return crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *)volume_key, sizeof volume_key, PASS,
                                               strlen(PASS));
}

static unsigned calls;
static uint64_t last_done;

static void die_in_the_middle(uint64_t done, uint64_t total, void *userdata) {
        (void)total;
        (void)userdata;
        if (++calls == 3) /* after a hotzone of the five, as the console shows it */
                _exit(42);
}

/* After the last hotzone, before libcryptsetup's last header update. */
static void die_after_the_last_hotzone(uint64_t done, uint64_t total, void *userdata) {
        (void)userdata;
        if (done == total)
                _exit(42);
}

static void count(uint64_t done, uint64_t total, void *userdata) {
        (void)total;
        (void)userdata;
        calls++;
        last_done = done;
}

static int load(const char *path, struct crypt_device **ret) {
        int r = crypt_init(ret, path);
        return r < 0 ? r : crypt_load(*ret, CRYPT_LUKS2, NULL);
}

/* The segment at offset, decrypted sector by sector, equals plain. */
static int decrypts_to(const char *path, uint64_t offset, const uint8_t *plain, size_t len) {
        static uint8_t in[4096], out[4096];
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int fd = open(path, O_RDONLY | O_CLOEXEC), ok = c && fd >= 0, n;

        for (uint64_t s = 0; ok && s < len / sector_size; s++) {
                uint8_t iv[16] = {0};
                for (int i = 0; i < 8; i++)
                        iv[i] = (uint8_t)((s * (sector_size / 512)) >> (8 * i));
                ok = pread(fd, in, sector_size, (off_t)(offset + s * sector_size)) == (ssize_t)sector_size &&
                     EVP_DecryptInit_ex(c, EVP_aes_256_xts(), NULL, volume_key, iv) == 1 &&
                     EVP_DecryptUpdate(c, out, &n, in, (int)sector_size) == 1 && n == (int)sector_size &&
                     memcmp(out, plain + s * sector_size, sector_size) == 0;
        }
        EVP_CIPHER_CTX_free(c);
        if (fd >= 0)
                close(fd);
        return ok;
}

/* The file holds plain's first len bytes at offset. */
static bool holds(const char *path, uint64_t offset, const uint8_t *plain, size_t len) {
        uint8_t *buf = malloc(len);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool same = buf && fd >= 0 && pread(fd, buf, len, (off_t)offset) == (ssize_t)len &&
                    memcmp(buf, plain, len) == 0;

        free(buf);
        if (fd >= 0)
                close(fd);
        return same;
}

#define HEADER_COPY 16384 /* libcryptsetup's default LUKS2 metadata area, of each of the two copies */
#define METADATA (SHIFT / 2)  /* both copies and the key slot areas: what the data offset leaves */

static const char *image_path(char path[static 512]) {
        snprintf(path, 512, "%s/data.img", test_tmpdir());
        return path;
}

/* plain (DATA bytes, malloc'd) on the image, whose encryption in place a
 * child begins and runs until it dies in die. */
static void make_cut_image(int *failed_, kos_datafs_reencrypt_progress_fn die, uint8_t **ret_plain) {
        char path[512], header[512];
        struct kos_error why = KOS_ERROR_NULL;
        uint8_t *plain = *ret_plain = malloc(DATA);
        struct crypt_device *cd = NULL;
        bool head_written = false;
        int fd, status;

        CHECK(plain);
        for (size_t i = 0; i < DATA; i++)
                plain[i] = (uint8_t)(i * 2654435761u >> 13);
        image_path(path);
        snprintf(header, sizeof header, "%s/header", test_tmpdir());
        CHECK((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0);
        CHECK(write(fd, plain, DATA) == (ssize_t)DATA && ftruncate(fd, IMAGE) == 0 && close(fd) == 0);

        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                int r = kos_datafs_reencrypt_begin(path, header, SHIFT, format, NULL, NULL, PASS, &head_written, &why);
                if (r >= 0 && load(path, &cd) >= 0)
                        r = kos_datafs_reencrypt_run(cd, 0, PASS, SHIFT, die, NULL, &why);
                fprintf(stderr, "  the child was not cut: %d %s\n", r, why.msg);
                _exit(1);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 42);
        CHECK(access(header, F_OK) < 0); /* the header file is gone after the begin */
}

/* The image's volume as the boot goes on with it: it opens, every byte
 * decrypts; loaded afresh, no requirement is left and the key slot opens;
 * the plain-text copy of the first segment is not in the free tail. */
static void check_finished(int *failed_, struct crypt_device *cd, const uint8_t *plain) {
        char path[512];
        uint32_t flags = ~0u;

        image_path(path);
        CHECK(crypt_reencrypt_status(cd, NULL) == CRYPT_REENCRYPT_NONE);
        CHECK(crypt_activate_by_passphrase(cd, NULL, 0, PASS, strlen(PASS), 0) == 0);
        uint64_t offset = crypt_get_data_offset(cd) * 512;
        crypt_free(cd);
        CHECK(offset == SHIFT / 2);
        CHECK(decrypts_to(path, offset, plain, DATA));
        CHECK(load(path, &cd) >= 0);
        CHECK(crypt_persistent_flags_get(cd, CRYPT_FLAGS_REQUIREMENTS, &flags) == 0 && flags == 0);
        CHECK(crypt_activate_by_passphrase(cd, NULL, 0, PASS, strlen(PASS), 0) == 0);
        crypt_free(cd);
        CHECK(!holds(path, IMAGE - SHIFT / 2, plain, SHIFT / 2));
}

/* die: where the child dies. old_copy (0 or 1; -1: none): after the run,
 * that copy of the header goes back to what it was before it (a cut while
 * the two copies of the finished header were written). */
static void cut_and_resume(int *failed_, kos_datafs_reencrypt_progress_fn die, int old_copy) {
        static uint8_t before[2 * HEADER_COPY];
        char path[512];
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL;
        uint8_t *plain = NULL;
        int fd;

        make_cut_image(failed_, die, &plain);
        if (*failed_) {
                free(plain);
                return;
        }
        image_path(path);
        CHECK((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0);
        CHECK(pread(fd, before, sizeof before, 0) == (ssize_t)sizeof before && close(fd) == 0);
        CHECK(load(path, &cd) >= 0);
        CHECK(crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE);
        int r = kos_datafs_reencrypt_run(cd, 0, PASS, SHIFT, count, NULL, &why);
        if (old_copy >= 0) {
                CHECK((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0);
                CHECK(pwrite(fd, before + old_copy * HEADER_COPY, HEADER_COPY, old_copy * HEADER_COPY) ==
                              HEADER_COPY &&
                      close(fd) == 0);
        }
        if (r < 0)
                fprintf(stderr, "  %s\n", why.msg);
        CHECK(r == (die == die_after_the_last_hotzone ? 1 : 0));
        /* cut in the middle: libcryptsetup's resume; after the last
         * hotzone: nothing was left to encrypt */
        CHECK(die == die_after_the_last_hotzone ? calls == 0 : calls >= 2 && last_done == IMAGE - SHIFT / 2);
        check_finished(failed_, cd, plain); /* as the boot goes on */
        free(plain);
}

/* One run of cut_and_resume() in sectors of size. */
static void cut_in_sectors_of(int *failed_, uint32_t size, kos_datafs_reencrypt_progress_fn die, int old_copy) {
        sector_size = size;
        calls = 0;
        cut_and_resume(failed_, die, old_copy);
}

/* --- Every write the finishing update makes to the image -----------------
 * What a power cut leaves depends on the order of the writes and syncs, which
 * libcryptsetup makes inside itself. So this binary defines write(),
 * pwrite() and fsync()/fdatasync() itself: the executable comes first in the
 * dynamic linker's lookup, so libcryptsetup's calls land here too (its
 * header writes are write() after lseek(), utils_io.c; its syncs fsync(),
 * device_sync()). Each goes straight to its system call; while journal.on,
 * one on the image (by inode, whatever its fd) is written down with its
 * bytes. Not a mock: every write still happens. A check at the end proves no
 * write to the image went by another path. */
#define MAX_WRITES 256

struct noted_write {
        off_t at;
        size_t len;
        uint8_t *data;
        size_t synced; /* how many writes before it a sync had made stable */
};

/* Where a child finishing the update dies (_exit(42)): nowhere; in the
 * middle of the first write to the secondary copy (its first 4 KiB, the
 * binary header, land, the rest not); at the first sync after it. */
enum cut { NO_CUT, CUT_IN_SECONDARY_WRITE, CUT_AFTER_SECONDARY_SYNC };

/* What the disk does to a write besides: nothing; a write() (libcryptsetup's
 * header writes) to the primary copy reported done but lost, as a disk
 * that drops writes would; KOS's whole-copy pwrite() of the secondary
 * replaced by a copy whose JSON is "{}" with a valid checksum, a header
 * libcryptsetup rejects (a stand-in for any finished JSON it refuses). */
enum spoil { SPOIL_NOTHING, SPOIL_LOSE_PRIMARY_WRITES, SPOIL_SECONDARY_JSON };

static struct {
        bool on;
        enum cut cut;
        enum spoil spoil;
        bool secondary_written, lost; /* lost: a write that could not be noted */
        dev_t dev;
        ino_t ino;
        size_t n, synced;
        struct noted_write w[MAX_WRITES];
} journal;

static bool on_image(int fd) {
        struct stat st;

        return journal.on && fstat(fd, &st) == 0 && st.st_dev == journal.dev && st.st_ino == journal.ino;
}

static bool touches_secondary(off_t at, size_t len) {
        return at < 2 * HEADER_COPY && at + (off_t)len > HEADER_COPY;
}

static void maybe_tear(int fd, const void *buf, size_t len, off_t at) {
        if (journal.cut == CUT_IN_SECONDARY_WRITE && touches_secondary(at, len) && len > 4096) {
                (void)!syscall(SYS_pwrite64, fd, buf, 4096, at);
                (void)!syscall(SYS_fsync, fd);
                _exit(42);
        }
}

static void note_write(off_t at, const void *buf, ssize_t n) {
        if (n <= 0)
                return;
        struct noted_write *w = &journal.w[journal.n];
        if (journal.n == MAX_WRITES || !(w->data = malloc((size_t)n))) {
                journal.lost = true;
                return;
        }
        memcpy(w->data, buf, (size_t)n);
        w->at = at;
        w->len = (size_t)n;
        w->synced = journal.synced;
        journal.n++;
        journal.secondary_written |= touches_secondary(at, (size_t)n);
}

static int note_sync(int fd, int r) {
        if (r == 0 && on_image(fd)) {
                journal.synced = journal.n;
                if (journal.cut == CUT_AFTER_SECONDARY_SYNC && journal.secondary_written)
                        _exit(42);
        }
        return r;
}

/* buf (len bytes at `at`, a whole secondary copy) with its JSON made "{}"
 * and its checksum made again, in out. */
static const void *secondary_with_empty_json(const void *buf, size_t len, off_t at, uint8_t out[static HEADER_COPY]) {
        if (journal.spoil != SPOIL_SECONDARY_JSON || at != HEADER_COPY || len != HEADER_COPY)
                return buf;
        memcpy(out, buf, HEADER_COPY);
        memset(out + 4096, 0, HEADER_COPY - 4096);
        memcpy(out + 4096, "{}", 2);
        memset(out + 0x1c0, 0, 64);
        SHA256(out, HEADER_COPY, out + 0x1c0);
        return out;
}

/* These overrides are process-wide (every write of the test binary and of
 * libcryptsetup comes here) and go straight to syscall() unless the
 * journal is on and the fd is the image's; they shadow ASan's interceptors
 * of the same names, so ASan does not check their buffers. SYS_pwrite64
 * takes the offset in one register: a 64-bit ABI is assumed. */
ssize_t write(int fd, const void *buf, size_t len) {
        off_t at = on_image(fd) ? lseek(fd, 0, SEEK_CUR) : -1;

        if (at >= 0)
                maybe_tear(fd, buf, len, at);
        if (at >= 0 && journal.spoil == SPOIL_LOSE_PRIMARY_WRITES && at < HEADER_COPY)
                return lseek(fd, (off_t)len, SEEK_CUR) < 0 ? -1 : (ssize_t)len;
        ssize_t n = syscall(SYS_write, fd, buf, len);

        if (at >= 0)
                note_write(at, buf, n);
        return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t at) {
        static uint8_t spoilt[HEADER_COPY];
        bool noted = on_image(fd);

        if (noted)
                buf = secondary_with_empty_json(buf, len, at, spoilt);
        if (noted)
                maybe_tear(fd, buf, len, at);
        ssize_t n = syscall(SYS_pwrite64, fd, buf, len, at);
        if (noted)
                note_write(at, buf, n);
        return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t at) {
        return pwrite(fd, buf, len, at);
}

int fsync(int fd) {
        return note_sync(fd, (int)syscall(SYS_fsync, fd));
}

int fdatasync(int fd) {
        return note_sync(fd, (int)syscall(SYS_fdatasync, fd));
}

static void journal_free(void) {
        for (size_t i = 0; i < journal.n; i++)
                free(journal.w[i].data);
        memset(&journal, 0, sizeof journal);
}

/* The journal on from here, empty (what an earlier test left, freed). */
static void journal_start(int *failed_, enum cut cut) {
        char path[512];
        struct stat st;

        journal_free();
        CHECK(stat(image_path(path), &st) == 0);
        journal.dev = st.st_dev;
        journal.ino = st.st_ino;
        journal.cut = cut;
        journal.on = true;
}

/* The part of w that falls in meta's METADATA bytes applied to meta. */
static void apply(uint8_t *meta, const struct noted_write *w) {
        if ((uint64_t)w->at < METADATA)
                memcpy(meta + w->at, w->data, w->len < METADATA - (size_t)w->at ? w->len : METADATA - (size_t)w->at);
}

/* The metadata as a cut right after write last may leave it on a disk with
 * a volatile write cache: the writes a sync made stable in place, the
 * later ones lost or torn in any order, so a header copy that any of them
 * changes is torn (zeroed here) and the other copy stays as it was. 1 when
 * a header copy was torn. */
static int cut_after(uint8_t *meta, const uint8_t *base, size_t last) {
        bool torn[2] = {false, false};

        memcpy(meta, base, METADATA);
        for (size_t i = 0; i < journal.w[last].synced; i++)
                apply(meta, &journal.w[i]);
        for (size_t i = journal.w[last].synced; i <= last; i++)
                for (int copy = 0; copy < 2; copy++) {
                        const struct noted_write *w = &journal.w[i];
                        off_t from = w->at > copy * HEADER_COPY ? w->at : copy * HEADER_COPY;
                        off_t to = w->at + (off_t)w->len < (copy + 1) * HEADER_COPY ? w->at + (off_t)w->len
                                                                                       : (copy + 1) * HEADER_COPY;
                        torn[copy] |= from < to && memcmp(meta + from, w->data + (from - w->at), to - from) != 0;
                }
        for (int copy = 0; copy < 2; copy++)
                if (torn[copy])
                        memset(meta + copy * HEADER_COPY, 0, HEADER_COPY);
        return torn[0] || torn[1];
}

/* libcryptsetup loads a header from meta, on an image of the full size:
 * 0 with its JSON (crypt_dump_json(), malloc'd) and whether it is still
 * that of an encryption in progress (crypt_reencrypt_status()), or a
 * negative errno. */
static int loads(const uint8_t *meta, char **ret_json, bool *ret_in_progress) {
        char path[512];
        struct crypt_device *cd = NULL;
        const char *json;
        int fd, r;

        snprintf(path, sizeof path, "%s/cut.img", test_tmpdir());
        if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
                return -errno;
        r = write(fd, meta, METADATA) == (ssize_t)METADATA && ftruncate(fd, IMAGE) == 0 ? 0 : -EIO;
        close(fd);
        if (r >= 0)
                r = load(path, &cd);
        /* Whatever the cut left that libcryptsetup loads, the System Kernel's
         * check before it (datafs-header.h) lets through. */
        struct kos_error why = KOS_ERROR_NULL;
        if (r >= 0 && datafs_header_copies_are_kos(path, &why) < 0) {
                fprintf(stderr, "  a header that loads is refused before loading: %s\n", why.msg);
                r = -EPERM;
        }
        if (r >= 0)
                r = crypt_dump_json(cd, &json, 0);
        if (r >= 0) {
                *ret_in_progress = crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE;
                r = (*ret_json = strdup(json)) ? 0 : -ENOMEM;
        }
        crypt_free(cd);
        return r;
}

/* A cut after each of the noted writes, made on base (the metadata before
 * the first), leaves a header that loads, and it is one of two: the old
 * one (the encryption still in progress, as base loads) or the finished
 * one (none in progress, as the image loads at the end). */
static void check_every_cut(int *failed_, const uint8_t *base) {
        uint8_t *meta = malloc(METADATA);
        char path[512], *old = NULL, *finished = NULL, *json = NULL;
        size_t header_cuts = 0;
        bool in_progress;

        CHECK(meta);
        /* Nothing went by unnoted: all the writes on the base make the image. */
        memcpy(meta, base, METADATA);
        for (size_t i = 0; i < journal.n; i++)
                apply(meta, &journal.w[i]);
        CHECK(holds(image_path(path), 0, meta, METADATA));
        CHECK(loads(meta, &finished, &in_progress) == 0 && !in_progress);
        CHECK(loads(base, &old, &in_progress) == 0 && in_progress);
        for (size_t i = 0; i < journal.n; i++) {
                header_cuts += (size_t)cut_after(meta, base, i);
                int r = loads(meta, &json, &in_progress);
                if (r < 0)
                        fprintf(stderr, "  a cut after write %zu of %zu (%zu bytes at %lld; %zu synced) leaves no "
                                        "header copy that loads: %d\n",
                                i + 1, journal.n, journal.w[i].len, (long long)journal.w[i].at, journal.w[i].synced,
                                r);
                CHECK(r >= 0);
                bool known = in_progress ? strcmp(json, old) == 0 : strcmp(json, finished) == 0;
                free(json);
                if (!known)
                        fprintf(stderr, "  a cut after write %zu of %zu loads a header neither the old nor the "
                                        "finished one (in progress: %d)\n",
                                i + 1, journal.n, in_progress);
                CHECK(known);
        }
        CHECK(header_cuts >= 2); /* the secondary's write, the primary's */
        free(old);
        free(finished);
        free(meta);
}

TEST(datafs_encryption_in_place_cut_in_the_middle_resumes_and_keeps_every_byte) {
        cut_in_sectors_of(failed_, 512, die_in_the_middle, -1);
}

TEST(datafs_encryption_in_place_in_4k_sectors_cut_in_the_middle_resumes_and_keeps_every_byte) {
        cut_in_sectors_of(failed_, 4096, die_in_the_middle, -1);
}

/* libcryptsetup 2.6.1 does not resume this one itself (-EIO, "Failed to
 * set device segments for next reencryption hotzone"). */
TEST(datafs_encryption_in_place_cut_after_its_last_hotzone_is_finished_and_keeps_every_byte) {
        cut_in_sectors_of(failed_, 4096, die_after_the_last_hotzone, -1);
}

/* Each copy carries its checksum and a higher sequence number: with one
 * of them still the old one, libcryptsetup loads the other. */
TEST(datafs_encryption_in_place_cut_while_its_last_header_update_is_written_loads_either_copy) {
        for (int copy = 0; copy < 2; copy++) {
                cut_in_sectors_of(failed_, 4096, die_after_the_last_hotzone, copy);
                if (*failed_)
                        return;
        }
}

/* Damage done to the image (fd) after its header loaded, which the load's
 * own recovery therefore did not repair: 0, or -1. */
typedef int (*damage_fn)(int fd);

static int no_damage(int fd) {
        (void)fd;
        return 0;
}

/* One byte of the primary's JSON area's zero padding changed. */
static int break_primary_checksum(int fd) {
        return pwrite(fd, " ", 1, HEADER_COPY - 1) == 1 ? 0 : -1;
}

static int garble_secondary_binary_header(int fd) {
        uint8_t junk[4096];

        memset(junk, 0xa5, sizeof junk);
        return pwrite(fd, junk, sizeof junk, HEADER_COPY) == (ssize_t)sizeof junk ? 0 : -1;
}

/* The secondary made newer than the primary (its sequence number raised,
 * its checksum made again): the primary is then a valid older copy. */
static int make_secondary_newer(int fd) {
        static uint8_t copy[HEADER_COPY];
        uint64_t seqid;

        if (pread(fd, copy, HEADER_COPY, HEADER_COPY) != HEADER_COPY)
                return -1;
        memcpy(&seqid, copy + 16, sizeof seqid);
        seqid = htobe64(be64toh(seqid) + 5);
        memcpy(copy + 16, &seqid, sizeof seqid);
        memset(copy + 0x1c0, 0, 64);
        SHA256(copy, HEADER_COPY, copy + 0x1c0);
        return pwrite(fd, copy, HEADER_COPY, HEADER_COPY) == HEADER_COPY ? 0 : -1;
}

/* What a writer of the disk does to a header whose every hotzone is done:
 * the moved first segment named at the start of the device (the data the
 * finishing update would wipe), in both copies, each with a higher
 * sequence number and its checksum again. */
static int move_the_moved_segment(int fd) {
        static uint8_t copy[HEADER_COPY];

        for (int c = 0; c < 2; c++) {
                json_t *root, *segment;
                const char *id;
                char *json = NULL;
                uint64_t seqid;
                int r = -1;

                if (pread(fd, copy, HEADER_COPY, c * HEADER_COPY) != HEADER_COPY ||
                    !(root = json_loads((const char *)copy + 4096, 0, NULL)))
                        return -1;
                json_object_foreach(json_object_get(root, "segments"), id, segment) {
                        json_t *flag = json_array_get(json_object_get(segment, "flags"), 0);
                        if (json_is_string(flag) && strncmp(json_string_value(flag), "backup-moved-segment", 20) == 0)
                                json_object_set_new(segment, "offset", json_string("0"));
                }
                json = json_dumps(root, JSON_COMPACT);
                json_decref(root);
                if (json && strlen(json) < HEADER_COPY - 4096) {
                        memset(copy + 4096, 0, HEADER_COPY - 4096);
                        memcpy(copy + 4096, json, strlen(json));
                        memcpy(&seqid, copy + 16, sizeof seqid);
                        seqid = htobe64(be64toh(seqid) + 1);
                        memcpy(copy + 16, &seqid, sizeof seqid);
                        memset(copy + 0x1c0, 0, 64);
                        SHA256(copy, HEADER_COPY, copy + 0x1c0);
                        r = pwrite(fd, copy, HEADER_COPY, c * HEADER_COPY) == HEADER_COPY ? 0 : -1;
                }
                free(json);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The shift finish_noted() runs the finishing update with. */
static uint64_t run_shift = SHIFT;

/* The image cut after its last hotzone and loaded into *ret_cd (its
 * plain text in *ret_plain); then damage done, its metadata kept in base;
 * then the finishing update run with the journal on and the disk doing
 * spoil: its result in *ret_r, its message in why. */
static void finish_noted(int *failed_, damage_fn damage, enum spoil spoil, uint8_t *base, uint8_t **ret_plain,
                         struct crypt_device **ret_cd, int *ret_r, struct kos_error *why) {
        char path[512];
        int fd;

        sector_size = 4096;
        calls = 0;
        make_cut_image(failed_, die_after_the_last_hotzone, ret_plain);
        if (*failed_)
                return;
        CHECK(load(image_path(path), ret_cd) >= 0);
        CHECK((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0);
        CHECK(damage(fd) == 0);
        CHECK(pread(fd, base, METADATA, 0) == (ssize_t)METADATA && close(fd) == 0);
        journal_start(failed_, NO_CUT);
        journal.spoil = spoil;
        *ret_r = kos_datafs_reencrypt_run(*ret_cd, 0, PASS, run_shift, count, NULL, why);
        journal.on = false;
        if (*ret_r < 0)
                fprintf(stderr, "  %s\n", why->msg);
        CHECK(!journal.lost);
}

/* finish_noted() with damage the finishing update must survive: it
 * finishes, and a cut after any of its writes leaves the old header or
 * the finished one. */
static void finish_at_every_cut(int *failed_, damage_fn damage) {
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL, *finished;
        uint8_t *plain = NULL, *base = malloc(METADATA);
        int r = 0;

        CHECK(base);
        finish_noted(failed_, damage, SPOIL_NOTHING, base, &plain, &cd, &r, &why);
        if (*failed_)
                goto out;
        CHECK(r == 1);
        check_every_cut(failed_, base);
        if (*failed_)
                goto out;
        finished = cd; /* check_finished() frees it */
        cd = NULL;
        check_finished(failed_, finished, plain);
out:
        crypt_free(cd);
        journal_free();
        free(base);
        free(plain);
}

/* The finishing update with the disk doing spoil after damage fails with
 * a message holding reason, and writes nothing: the metadata and the
 * moved segment's plain-text copy are as they were. */
static void refused_and_nothing_written(int *failed_, damage_fn damage, enum spoil spoil, const char *reason) {
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL;
        uint8_t *plain = NULL, *base = malloc(METADATA);
        char path[512];
        int r = 0;

        CHECK(base);
        finish_noted(failed_, damage, spoil, base, &plain, &cd, &r, &why);
        if (*failed_)
                goto out;
        CHECK(r < 0 && strstr(why.msg, reason));
        CHECK(holds(image_path(path), 0, base, METADATA));
        CHECK(holds(path, IMAGE - SHIFT / 2, plain, SHIFT / 2));
out:
        crypt_free(cd);
        journal_free();
        free(base);
        free(plain);
}

/* libcryptsetup writes a header one copy at a time with a sync between
 * them; KOS's finishing update does too (the secondary, sync, then
 * libcryptsetup's repair of the primary), so a cut at any write, unsynced
 * writes lost or torn, leaves a copy that loads: the old header or the
 * finished one. */
TEST(datafs_encryption_in_place_finishing_update_keeps_one_whole_header_copy_at_every_write) {
        finish_at_every_cut(failed_, no_damage);
}

/* A primary copy that fails its checksum (torn, and the load's own
 * recovery did not repair it): the secondary is the only valid copy, so
 * it is not written before libcryptsetup's repair made the primary whole
 * again from it. */
TEST(datafs_encryption_in_place_finishing_update_over_a_primary_copy_failing_its_checksum_keeps_a_copy_that_loads_at_every_write) {
        finish_at_every_cut(failed_, break_primary_checksum);
}

/* A secondary copy whose binary header is garbage is about to be written
 * anyway: it is built from the primary's, as libcryptsetup's recovery
 * does, not refused at every boot. */
TEST(datafs_encryption_in_place_finishing_update_over_a_garbage_secondary_binary_header_finishes) {
        finish_at_every_cut(failed_, garble_secondary_binary_header);
}

/* The primary fails its checksum and the disk loses libcryptsetup's
 * repair of it: KOS refuses to write the secondary, the only valid copy,
 * and writes nothing (the next boot, the repair landing, finishes). */
TEST(datafs_encryption_in_place_primary_copy_still_failing_its_checksum_after_repair_is_refused_and_nothing_written) {
        refused_and_nothing_written(failed_, break_primary_checksum, SPOIL_LOSE_PRIMARY_WRITES, "does not verify");
}

/* A secondary newer than a valid primary, and the disk loses
 * libcryptsetup's repair of the primary: the primary is not the copy
 * libcryptsetup loads, so the secondary is not written over. */
TEST(datafs_encryption_in_place_primary_copy_older_than_the_secondary_after_repair_is_refused_and_nothing_written) {
        refused_and_nothing_written(failed_, make_secondary_newer, SPOIL_LOSE_PRIMARY_WRITES, "is older than");
}

/* A writer of the disk names another range as the moved segment's
 * plain-text copy, around the device's own key slot: the encryption's
 * metadata no longer verifies with the volume key, and the finishing update
 * wipes and writes nothing. */
TEST(datafs_encryption_in_place_finishing_wipe_of_a_range_kos_did_not_move_is_refused_and_nothing_written) {
        refused_and_nothing_written(failed_, move_the_moved_segment, SPOIL_NOTHING,
                                    "does not verify with its volume key (libcryptsetup's reencryption digest): "
                                    "Operation not permitted; nothing is wiped or written");
}

/* Even a header whose metadata verifies (written with the volume key) has
 * its moved segment wiped only where the shift KOS gave put it: run with
 * another shift than the encryption began with, nothing is wiped. */
TEST(datafs_encryption_in_place_finishing_wipe_is_held_to_the_shift_kos_began_with) {
        run_shift = 2 * SHIFT;
        refused_and_nothing_written(failed_, no_damage, SPOIL_NOTHING,
                                    "moved segment is 16777216 bytes at 83886080, not the 33554432 bytes at the end "
                                    "of the device (100663296 bytes) where KOS's encryption in place puts it: "
                                    "nothing is wiped");
        run_shift = SHIFT;
}

/* libcryptsetup rejects the finished secondary copy (its repair then
 * rewrites it from the old primary and succeeds): the finishing update
 * fails, it does not report a header it did not write. */
TEST(datafs_encryption_in_place_finished_header_libcryptsetup_rejects_is_an_error_not_success) {
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL;
        uint8_t *plain = NULL, *base = malloc(METADATA);
        int r = 0;

        CHECK(base);
        finish_noted(failed_, no_damage, SPOIL_SECONDARY_JSON, base, &plain, &cd, &r, &why);
        if (*failed_)
                goto out;
        CHECK(r < 0 && strstr(why.msg, "not the finished one"));
out:
        crypt_free(cd);
        journal_free();
        free(base);
        free(plain);
}

static uint64_t seqid_of_copy(int fd, int copy) {
        uint64_t seqid = 0;

        if (pread(fd, &seqid, sizeof seqid, copy * HEADER_COPY + 16) != (ssize_t)sizeof seqid)
                return 0;
        return be64toh(seqid);
}

/* The image cut after its last hotzone, then its finishing update cut at
 * cut by a child: the cut fell between the copies, the secondary holds the
 * new sequence number (whole or torn), the primary the old one. */
static void cut_finishing_update(int *failed_, enum cut cut, uint8_t **ret_plain) {
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL;
        char path[512];
        int fd, status;

        sector_size = 4096;
        calls = 0;
        make_cut_image(failed_, die_after_the_last_hotzone, ret_plain);
        if (*failed_)
                return;
        image_path(path);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                int r = load(path, &cd);
                journal_start(failed_, cut);
                if (r >= 0 && !*failed_)
                        r = kos_datafs_reencrypt_run(cd, 0, PASS, SHIFT, count, NULL, &why);
                fprintf(stderr, "  the finishing update was not cut: %d %s\n", r, why.msg);
                _exit(1);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 42);
        CHECK((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
        uint64_t primary = seqid_of_copy(fd, 0), secondary = seqid_of_copy(fd, 1);
        CHECK(close(fd) == 0);
        CHECK(primary > 0 && secondary == primary + 1);
}

/* A cut after the secondary copy of the finishing update is synced, before
 * libcryptsetup brings the primary up to date: the secondary, the newer,
 * loads, the volume opens and every byte decrypts. */
TEST(datafs_encryption_in_place_cut_after_the_finished_secondary_header_copy_loads_it_and_keeps_every_byte) {
        struct crypt_device *cd = NULL;
        uint8_t *plain = NULL;
        char path[512];

        cut_finishing_update(failed_, CUT_AFTER_SECONDARY_SYNC, &plain);
        if (*failed_)
                goto out;
        /* the next boot: the header loads, with nothing left to encrypt */
        CHECK(load(image_path(path), &cd) >= 0);
        check_finished(failed_, cd, plain);
out:
        free(plain);
}

/* A cut while the secondary copy of the finishing update is written (its
 * binary header with the new sequence number landed, its JSON not): the
 * primary, the old header, loads, and the next run finishes again. */
TEST(datafs_encryption_in_place_cut_while_the_finished_secondary_header_copy_is_written_finishes_again) {
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL;
        uint8_t *plain = NULL;
        char path[512];

        cut_finishing_update(failed_, CUT_IN_SECONDARY_WRITE, &plain);
        if (*failed_)
                goto out;
        CHECK(load(image_path(path), &cd) >= 0);
        CHECK(crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE);
        int r = kos_datafs_reencrypt_run(cd, 0, PASS, SHIFT, count, NULL, &why);
        if (r < 0)
                fprintf(stderr, "  %s\n", why.msg);
        CHECK(r == 1);
        check_finished(failed_, cd, plain);
out:
        free(plain);
}

TEST(datafs_encryption_in_place_refuses_a_shift_that_is_not_whole_4k_pairs) {
        char path[512], header[512];
        struct kos_error why = KOS_ERROR_NULL;

        sector_size = 512;
        bool head_written = true;

        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        snprintf(header, sizeof header, "%s/header", test_tmpdir());
        CHECK(kos_datafs_reencrypt_begin(path, header, 4096, format, NULL, NULL, PASS, &head_written, &why) ==
              -EINVAL);
        CHECK(!head_written);
        CHECK(strstr(why.msg, "not a multiple of 8 KiB"));
}
