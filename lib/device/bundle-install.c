/* SPDX-License-Identifier: MIT */
#include "bundle-install.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bootstate.h"
#include "cpio.h"
#include "gc.h"
#include "manifest.h"
#include "select.h"
#include "signature.h"
#include "util.h"
#include "verify.h"

#define STREAM_CHUNK (256u << 10)

struct reader {
        int fd;
        uint64_t offset;
};

static int read_exact(struct reader *rd, void *buf, size_t len) {
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = read(rd->fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EBADMSG; /* truncated */
                p += n;
                len -= (size_t)n;
                rd->offset += (uint64_t)n;
        }
        return 0;
}

static int skip_padding(struct reader *rd) {
        uint8_t pad[4];
        size_t n = (4 - rd->offset % 4) % 4;
        int r = read_exact(rd, pad, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (pad[i])
                        return -EBADMSG;
        return 0;
}

static int hex_field(const char *p, uint32_t *ret) {
        uint32_t v = 0;
        for (int i = 0; i < 8; i++) {
                char c = p[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0)
                        return -EBADMSG;
                v = v << 4 | (uint32_t)d;
        }
        *ret = v;
        return 0;
}

struct entry {
        char name[KOS_CPIO_NAME_MAX];
        uint32_t mode;
        uint64_t size;
};

/* One header and its name; the data follows in the stream. */
static int read_entry(struct reader *rd, struct entry *ret) {
        char h[KOS_CPIO_HEADER_LEN];
        uint32_t fields[13];
        int r;

        if ((r = read_exact(rd, h, sizeof h)) < 0)
                return r;
        if (memcmp(h, KOS_CPIO_MAGIC, 6) != 0)
                return -EBADMSG;
        for (int i = 0; i < 13; i++)
                if (hex_field(h + 6 + 8 * i, &fields[i]) < 0)
                        return -EBADMSG;
        uint32_t name_size = fields[11];
        if (name_size < 2 || name_size > KOS_CPIO_NAME_MAX)
                return -EBADMSG;
        if ((r = read_exact(rd, ret->name, name_size)) < 0)
                return r;
        if (ret->name[name_size - 1] != '\0' || strlen(ret->name) != name_size - 1)
                return -EBADMSG;
        ret->mode = fields[1];
        ret->size = fields[6];
        return skip_padding(rd);
}

struct install {
        const struct kos_imagefs *img;
        const struct kos_keyring *ring;
        const struct kos_bundle_options *options;
        struct kos_bundle_result *result;
        struct reader rd;
        struct kos_manifest *manifest;
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        size_t n_blobs;
        bool seen[KOS_MANIFEST_MAX_BLOBS];
        uint8_t added[KOS_MANIFEST_MAX_BLOBS][KOS_SHA256_LEN]; /* to undo on failure */
        size_t n_added;
        uint64_t total, done;
        bool manifest_installed; /* past this, a failure undoes nothing */
};

/* After the commit point: the install stands, the caller hears what was left undone. */
static void warn(struct install *in, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct install *in, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(in->result->warning, sizeof in->result->warning, format, ap);
        va_end(ap);
}

static int refuse(struct install *in, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct install *in, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        int r = kos_error_setv(&in->result->error, -EBADMSG, format, ap);
        va_end(ap);
        return r;
}

static int read_small_entry(struct install *in, const char *want, size_t cap, char **ret, size_t *ret_len) {
        struct entry e;
        int r = read_entry(&in->rd, &e);

        if (r < 0)
                return refuse(in, "not a bundle: no valid cpio entry %s at the start", want);
        if (strcmp(e.name, want) != 0)
                return refuse(in, "entry \"%s\" where %s must be", e.name, want);
        if (e.size > cap)
                return refuse(in, "%s is larger than %zu bytes", want, cap);
        char *buf = malloc(e.size + 1);
        if (!buf)
                return -ENOMEM;
        if ((r = read_exact(&in->rd, buf, e.size)) < 0 || (r = skip_padding(&in->rd)) < 0) {
                free(buf);
                return refuse(in, "%s is truncated", want);
        }
        buf[e.size] = '\0';
        *ret = buf;
        *ret_len = e.size;
        return 0;
}

/* Authenticate, then parse: nothing of the bundle (or of a pull) is used
 * before the signature over the manifest's exact bytes has verified. */
static int verify_manifest(struct install *in, const char *untrusted_json, size_t json_len, const char *untrusted_sig,
                           size_t sig_len) {
        struct kos_loaded_manifest loaded;
        int r = kos_manifest_load_verified(in->ring, untrusted_json, json_len, untrusted_sig, sig_len, "manifest.json", &loaded);

        if (r == -EBADMSG)
                r = refuse(in, "%s: %s", kos_reason_to_string(loaded.reason), loaded.error.msg);
        if (r < 0) {
                kos_loaded_manifest_done(&loaded);
                return r;
        }
        in->manifest = TAKE_PTR(loaded.manifest);
        memcpy(in->result->id, loaded.id, KOS_SHA256_LEN);
        kos_loaded_manifest_done(&loaded);
        snprintf(in->result->name, sizeof in->result->name, "%s", in->manifest->name);
        in->n_blobs = kos_manifest_blobs(in->manifest, in->blobs, in->labels, KOS_MANIFEST_MAX_BLOBS);
        return 0;
}

static int read_manifest(struct install *in, char **ret_json, size_t *ret_json_len, char **ret_sig, size_t *ret_sig_len) {
        _cleanup_free_ char *untrusted_json = NULL, *untrusted_sig = NULL;
        int r;

        if ((r = read_small_entry(in, "manifest.json", KOS_MANIFEST_MAX, &untrusted_json, ret_json_len)) < 0 ||
            (r = read_small_entry(in, "manifest.json.sig", KOS_SIGNATURE_FILE_MAX, &untrusted_sig, ret_sig_len)) < 0 ||
            (r = verify_manifest(in, untrusted_json, *ret_json_len, untrusted_sig, *ret_sig_len)) < 0)
                return r;
        *ret_json = TAKE_PTR(untrusted_json); /* authenticated now */
        *ret_sig = TAKE_PTR(untrusted_sig);
        return 0;
}

/* Anti-rollback, before a single byte is written: a manifest below the
 * device's floor could never boot here. */
static int check_rollback(struct install *in) {
        struct kos_rollback_floor floor;
        struct kos_candidate c = {0};
        int r = kos_rollback_floor_read(in->img, in->ring, &floor);

        if (r == -ENOTRECOVERABLE)
                return refuse(in, "rollback floor: %s", floor.tpm);
        if (r < 0)
                return r;
        if (!kos_check_rollback(in->manifest, floor.value, &c))
                return refuse(in, "%s: %s", kos_reason_to_string(c.reason), c.detail);
        return 0;
}

static bool blob_present(const struct kos_imagefs *img, const struct kos_blob *b) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        struct stat st;

        kos_hex_encode(b->sha256, KOS_SHA256_LEN, hex);
        return fstatat(img->components_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
               (uint64_t)st.st_size == b->size;
}

/* One component being written into components/<tmp> while it is hashed;
 * renamed to components/<sha256> only when every byte is there and the hash
 * matches. Bundles and pulls both write components through here. */
struct kos_component_sink {
        struct install *in;
        size_t index;
        int fd;
        EVP_MD_CTX *ctx;
        uint64_t written; /* bytes in the file, those of an earlier, interrupted run included */
        char tmp[KOS_SHA256_HEX_LEN + 32];
};

/* Rehashes what an interrupted run left in the temporary file, so a resumed
 * download goes on from its end; a leftover longer than the blob is junk
 * and starts over. */
static int sink_rehash(struct kos_component_sink *s, uint64_t size) {
        struct stat st;
        uint8_t buf[65536];

        if (fstat(s->fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t)st.st_size > size) {
                if (ftruncate(s->fd, 0) < 0)
                        return -errno;
                return 0;
        }
        for (;;) {
                ssize_t n = read(s->fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(s->ctx, buf, (size_t)n) != 1)
                        return -EIO;
                s->written += (uint64_t)n;
        }
        return 0;
}

/* prefix names the temporary file (".tmp-bundle-", ".tmp-pull-"); with
 * resume, the file an earlier run left is kept and rehashed. */
static int sink_open(struct install *in, size_t index, const char *prefix, bool resume, struct kos_component_sink *ret) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        int r;

        *ret = (struct kos_component_sink){.in = in, .index = index, .fd = -1};
        kos_hex_encode(in->blobs[index]->sha256, KOS_SHA256_LEN, hex);
        snprintf(ret->tmp, sizeof ret->tmp, "%s%s", prefix, hex);
        ret->ctx = EVP_MD_CTX_new();
        if (!ret->ctx || EVP_DigestInit_ex(ret->ctx, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        if (!resume) {
                ret->fd = kos_create_file_at(in->img->components_fd, ret->tmp, 0644);
                return ret->fd < 0 ? ret->fd : 0;
        }
        ret->fd = openat(in->img->components_fd, ret->tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
        if (ret->fd < 0)
                return -errno;
        r = sink_rehash(ret, in->blobs[index]->size);
        if (r == -EBADFD) { /* a FIFO or the like where the leftover was: start over */
                kos_closep(&ret->fd);
                ret->fd = kos_create_file_at(in->img->components_fd, ret->tmp, 0644);
                return ret->fd < 0 ? ret->fd : 0;
        }
        if (r < 0)
                return r;
        if (ret->written == 0 && (EVP_DigestInit_ex(ret->ctx, EVP_sha256(), NULL) != 1 || lseek(ret->fd, 0, SEEK_SET) < 0))
                return -EIO;
        in->done += ret->written;
        return 0;
}

int kos_component_sink_write(struct kos_component_sink *s, const void *data, size_t len) {
        struct install *in = s->in;
        int r;

        if (len > in->blobs[s->index]->size - s->written)
                return refuse(in, "component-size-mismatch: %s is longer than the manifest's %llu bytes", in->labels[s->index],
                              (unsigned long long)in->blobs[s->index]->size);
        /* A failing digest is our failure (-EIO), not the source's. */
        if (EVP_DigestUpdate(s->ctx, data, len) != 1)
                return -EIO;
        if ((r = kos_write_all(s->fd, data, len)) < 0)
                return r;
        kos_fault_point();
        s->written += len;
        in->done += len;
        if (in->options->progress)
                in->options->progress(in->done, in->total, in->options->userdata);
        return 0;
}

int kos_component_sink_refuse(struct kos_component_sink *s, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        int r = kos_error_setv(&s->in->result->error, -EBADMSG, format, ap);
        va_end(ap);
        return r;
}

/* All bytes there and the hash the manifest's: fsync, rename into place. */
static int sink_commit(struct kos_component_sink *s) {
        struct install *in = s->in;
        const struct kos_blob *b = in->blobs[s->index];
        char hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t digest[KOS_SHA256_LEN];
        unsigned digest_len;

        if (s->written != b->size)
                return refuse(in, "component %s is truncated", in->labels[s->index]);
        if (EVP_DigestFinal_ex(s->ctx, digest, &digest_len) != 1 || digest_len != KOS_SHA256_LEN)
                return -EIO;
        if (!kos_digest_equal(digest, b->sha256))
                return refuse(in, "component-hash-mismatch: component %s does not hash to the manifest's sha256",
                              in->labels[s->index]);
        if (fsync(s->fd) < 0)
                return -errno;
        kos_fault_point();
        kos_hex_encode(b->sha256, KOS_SHA256_LEN, hex);
        if (renameat(in->img->components_fd, s->tmp, in->img->components_fd, hex) < 0)
                return -errno;
        kos_fault_point();
        memcpy(in->added[in->n_added++], b->sha256, KOS_SHA256_LEN);
        in->result->added++;
        in->result->bytes_added += b->size;
        return 0;
}

/* keep: leave the temporary file for a later run to resume. */
static void sink_close(struct kos_component_sink *s, bool keep) {
        if (s->fd >= 0 && !keep)
                (void)unlinkat(s->in->img->components_fd, s->tmp, 0);
        kos_closep(&s->fd);
        EVP_MD_CTX_free(s->ctx);
        s->ctx = NULL;
}

/* Copies size bytes of the stream into components/.tmp-bundle-<hex> while
 * hashing them; renames into place only when the hash matches. */
static int stream_component(struct install *in, size_t index, uint64_t size) {
        struct kos_component_sink sink;
        _cleanup_free_ uint8_t *buf = malloc(STREAM_CHUNK);
        int r = sink_open(in, index, ".tmp-bundle-", false, &sink);

        if (r >= 0 && !buf)
                r = -ENOMEM;
        for (uint64_t left = size; left > 0 && r >= 0;) {
                size_t n = left < STREAM_CHUNK ? (size_t)left : STREAM_CHUNK;
                if ((r = read_exact(&in->rd, buf, n)) < 0) {
                        r = refuse(in, "component %s is truncated", in->labels[index]);
                        break;
                }
                r = kos_component_sink_write(&sink, buf, n);
                left -= n;
        }
        if (r >= 0)
                r = sink_commit(&sink);
        sink_close(&sink, false);
        return r;
}

/* Each entry after the signature: a blob of the manifest, at most once. */
static int read_components(struct install *in) {
        for (;;) {
                struct entry e;
                uint8_t digest[KOS_SHA256_LEN];
                size_t index = SIZE_MAX;
                int r;

                if (read_entry(&in->rd, &e) < 0)
                        return refuse(in, "the bundle is truncated or not a cpio newc stream");
                if (strcmp(e.name, "TRAILER!!!") == 0)
                        return 0;
                if (strncmp(e.name, "components/", 11) != 0 ||
                    kos_hex_decode(e.name + 11, strlen(e.name + 11), digest, KOS_SHA256_LEN) < 0)
                        return refuse(in, "unexpected entry \"%.64s\"", e.name);
                for (size_t i = 0; i < in->n_blobs; i++)
                        if (!in->seen[i] && memcmp(in->blobs[i]->sha256, digest, KOS_SHA256_LEN) == 0 && index == SIZE_MAX)
                                index = i;
                if (index == SIZE_MAX)
                        return refuse(in, "entry %.80s is not a component of the manifest, or comes twice", e.name);
                /* The same blob may serve several roles: mark them all. */
                for (size_t i = 0; i < in->n_blobs; i++)
                        if (memcmp(in->blobs[i]->sha256, digest, KOS_SHA256_LEN) == 0)
                                in->seen[i] = true;
                if (e.size != in->blobs[index]->size)
                        return refuse(in, "component-size-mismatch: %s has %llu bytes, the manifest says %llu",
                                      in->labels[index], (unsigned long long)e.size,
                                      (unsigned long long)in->blobs[index]->size);
                if (blob_present(in->img, in->blobs[index])) {
                        /* Already on the device (verified when it came): skip the bytes. */
                        uint8_t scratch[65536];
                        for (uint64_t left = e.size; left > 0;) {
                                size_t n = left < sizeof scratch ? (size_t)left : sizeof scratch;
                                if (read_exact(&in->rd, scratch, n) < 0)
                                        return refuse(in, "component %s is truncated", in->labels[index]);
                                left -= n;
                        }
                        in->result->skipped++;
                } else if ((r = stream_component(in, index, e.size)) < 0)
                        return r;
                if ((r = skip_padding(&in->rd)) < 0)
                        return refuse(in, "bad padding after %s", in->labels[index]);
        }
}

static void undo_added(struct install *in) {
        char hex[KOS_SHA256_HEX_LEN + 1];

        for (size_t i = 0; i < in->n_added; i++) {
                kos_hex_encode(in->added[i], KOS_SHA256_LEN, hex);
                (void)unlinkat(in->img->components_fd, hex, 0);
        }
        (void)fsync(in->img->components_fd);
}

/* Uninstalls the manifests that fell off `active`, then removes the
 * components no manifest references any more. Runs after the commit point:
 * a failure here is a warning, never a refusal. */
static void retire(struct install *in, const struct kos_active_list *dropped) {
        int r = 0;

        for (size_t i = 0; i < dropped->n; i++) {
                char json[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];
                if (!dropped->entries[i].name_valid)
                        continue;
                kos_manifest_file_names(dropped->entries[i].name, json, sig);
                (void)unlinkat(in->img->manifests_fd, json, 0);
                kos_fault_point();
                (void)unlinkat(in->img->manifests_fd, sig, 0);
                in->result->removed_manifests++;
        }
        if (dropped->n > 0 && fsync(in->img->manifests_fd) < 0) {
                warn(in, "cannot sync manifests/ after retiring old manifests: %s", strerror(errno));
                return;
        }
        if ((r = kos_imagefs_gc(in->img, &(struct kos_gc_options){.ring = in->ring})) < 0)
                warn(in, "garbage collection of components/ failed: %s", strerror(-r));
}

/* The manifests an install never retires, by name ("" for none). */
struct protected_names {
        char running[KOS_NAME_MAX + 1];
        char newest_good[KOS_NAME_MAX + 1];
};

static bool is_protected(const struct protected_names *p, const struct kos_active_entry *e) {
        return e->name_valid && (strcmp(e->name, p->running) == 0 || strcmp(e->name, p->newest_good) == 0);
}

/* The newest manifest marked good among entries 1.. of list (entry 0 is the
 * new one): one that authenticates against the keyring, whose boot state is
 * good (or none: installed by hand, treated as good), with the highest
 * `version`; on equal versions the earlier in active. An I/O error is
 * returned: without the answer nothing may be retired. */
static int find_newest_good(struct install *in, const struct kos_active_list *list, char ret_name[static KOS_NAME_MAX + 1]) {
        uint64_t best_version = 0;
        bool found = false;

        ret_name[0] = '\0';
        for (size_t i = 1; i < list->n; i++) {
                _cleanup_manifest_ struct kos_manifest *m = NULL;
                struct kos_candidate c = {0};
                struct kos_boot_state st;
                int r;

                if (!list->entries[i].name_valid)
                        continue;
                if (!kos_load_manifest(in->img, in->ring, list->entries[i].name, &c, &m)) {
                        if (c.reason == KOS_REASON_IO_ERROR)
                                return -EIO;
                        continue; /* cannot boot, so it is not good */
                }
                if ((r = kos_boot_state_read(in->img, c.id, &st)) < 0)
                        return r;
                if (st.kind == KOS_BOOT_STATE_TRIES || (found && m->version <= best_version))
                        continue;
                found = true;
                best_version = m->version;
                snprintf(ret_name, KOS_NAME_MAX + 1, "%s", m->name);
        }
        return 0;
}

static int find_protected(struct install *in, const struct kos_active_list *list, struct protected_names *ret) {
        int r;

        *ret = (struct protected_names){0};
        if (in->options->running_id) {
                r = kos_imagefs_find_manifest_by_id(in->img, in->options->running_id, ret->running);
                if (r < 0 && r != -ENOENT)
                        return r; /* not installed at all: nothing of it to retire */
        }
        return find_newest_good(in, list, ret->newest_good);
}

/* Entry 0 (the new manifest) stays; the protected ones stay wherever they
 * are; the others stay in order while there is room for keep in all. */
static void trim_active(struct kos_active_list *list, unsigned keep, const struct protected_names *protected,
                        struct kos_active_list *dropped) {
        struct kos_active_list kept = {.n = 1, .entries = {list->entries[0]}, .n_ignored = list->n_ignored};
        size_t n_protected = 0;

        for (size_t i = 1; i < list->n; i++)
                n_protected += is_protected(protected, &list->entries[i]);
        size_t room = keep > 1 + n_protected ? keep - 1 - n_protected : 0;
        for (size_t i = 1; i < list->n; i++) {
                if (is_protected(protected, &list->entries[i]))
                        kept.entries[kept.n++] = list->entries[i];
                else if (room > 0) {
                        room--;
                        kept.entries[kept.n++] = list->entries[i];
                } else
                        dropped->entries[dropped->n++] = list->entries[i];
        }
        *list = kept;
}

/* New manifest first, the previous ones after it, at most keep in all but
 * never without the running and the newest good manifest; the ones dropped
 * are uninstalled, then their unreferenced components removed. */
static int update_active(struct install *in) {
        struct kos_active_list list, dropped = {0};
        struct protected_names protected;
        unsigned keep = in->options->keep ? in->options->keep : KOS_BUNDLE_DEFAULT_KEEP;
        int r = kos_active_read(in->img, &list);

        if (r < 0 && r != -ENOENT)
                return r;
        if ((r = kos_active_insert(&list, in->manifest->name, true)) < 0 || (r = find_protected(in, &list, &protected)) < 0)
                return r;
        trim_active(&list, keep, &protected, &dropped);
        if ((r = kos_active_write(in->img, &list)) < 0)
                return r;
        /* The commit point: the device now boots the new manifest. */
        in->result->committed = true;
        retire(in, &dropped);
        return 0;
}

/* True when manifests/<name>.json holds the manifest of id and is first in active. */
static bool is_active_first(const struct kos_imagefs *img, const char *name, const uint8_t id[static KOS_SHA256_LEN]) {
        struct kos_active_list list;
        uint8_t have[KOS_SHA256_LEN];

        return kos_active_read(img, &list) >= 0 && list.n > 0 && list.entries[0].name_valid &&
               strcmp(list.entries[0].name, name) == 0 && kos_imagefs_manifest_id(img, name, have) >= 0 &&
               kos_digest_equal(have, id);
}

/* The first steps of every install, before a byte is written or a
 * component fetched: the manifest authenticated (in->manifest set), the
 * rollback floor checked. 1 when the same manifest is installed and first
 * in active already (nothing to do), 0 to go on. */
static int install_begin(struct install *in) {
        int r = check_rollback(in);

        if (r < 0)
                return r;
        for (size_t i = 0; i < in->n_blobs; i++) {
                bool first = true;
                for (size_t j = 0; j < i; j++)
                        first = first && memcmp(in->blobs[j]->sha256, in->blobs[i]->sha256, KOS_SHA256_LEN) != 0;
                if (!first)
                        continue; /* the same blob in several roles counts once */
                in->total += in->blobs[i]->size;
                in->result->components++;
                in->result->components_bytes += in->blobs[i]->size;
        }
        if (is_active_first(in->img, in->manifest->name, in->result->id)) {
                /* A bundle seen again (say, on a KOS-UPDATE drive left in): no
                 * change, and no reason for the caller to reboot. */
                in->result->already_active = true;
                return 1;
        }
        return 0;
}

/* The last steps, once the components are in: every blob present, the
 * manifest written, on trial, first in active (the commit point), old ones
 * retired. */
static int install_commit(struct install *in, const char *json, size_t json_len, const char *sig, size_t sig_len) {
        unsigned tries = in->options->tries ? in->options->tries : KOS_BUNDLE_DEFAULT_TRIES;
        int r;

        for (size_t i = 0; i < in->n_blobs; i++)
                if (!blob_present(in->img, in->blobs[i]))
                        return refuse(in, "component-missing: %s is neither in the bundle nor on the device", in->labels[i]);
        r = kos_imagefs_install_manifest(in->img, in->manifest->name, json, json_len, sig, sig_len);
        if (r == -EEXIST)
                return refuse(in, "a different manifest named %s is installed already: a new release needs a new name",
                              in->manifest->name);
        if (r < 0)
                return r;
        /* From here the ImageFS holds a complete, valid, inactive manifest:
         * nothing is undone any more. */
        in->manifest_installed = true;
        if ((r = kos_boot_state_set_tries(in->img, in->result->id, tries)) < 0)
                return r;
        return update_active(in);
}

static struct install *install_new(const struct kos_imagefs *img, const struct kos_keyring *ring,
                                   const struct kos_bundle_options *options, struct kos_bundle_result *result) {
        struct install *in = calloc(1, sizeof *in);

        memset(result, 0, sizeof *result);
        if (in)
                *in = (struct install){.img = img, .ring = ring, .options = options, .result = result, .rd = {.fd = -1}};
        return in;
}

static int install_end(struct install *in, int r, bool keep_added) {
        if (r < 0 && !in->manifest_installed && !keep_added)
                undo_added(in);
        kos_manifest_free(in->manifest);
        free(in);
        return r > 0 ? 0 : r;
}

int kos_bundle_install(const struct kos_imagefs *img, const struct kos_keyring *ring, int fd,
                       const struct kos_bundle_options *options, struct kos_bundle_result *result) {
        struct install *in = install_new(img, ring, options, result);
        _cleanup_free_ char *json = NULL, *sig = NULL;
        size_t json_len, sig_len;
        int r;

        if (!in)
                return -ENOMEM;
        in->rd.fd = fd;
        if ((r = read_manifest(in, &json, &json_len, &sig, &sig_len)) < 0 || (r = install_begin(in)) != 0)
                return install_end(in, r, false);
        if ((r = read_components(in)) < 0)
                return install_end(in, r, false);
        return install_end(in, install_commit(in, json, json_len, sig, sig_len), false);
}

static bool first_of_its_blob(const struct install *in, size_t i) {
        for (size_t j = 0; j < i; j++)
                if (memcmp(in->blobs[j]->sha256, in->blobs[i]->sha256, KOS_SHA256_LEN) == 0)
                        return false;
        return true;
}

/* Before a pull fetches anything: what pulls that were killed (a power cut,
 * Node Manager's deadline) left for other releases goes, so that failed
 * pulls never add up; a download of this release's own blobs stays, to be
 * resumed. The same gc as after an install, with this manifest's blobs
 * counted as referenced. */
static int remove_leftovers(struct install *in) {
        int r = kos_imagefs_gc(in->img, &(struct kos_gc_options){.ring = in->ring, .keep = in->blobs, .n_keep = in->n_blobs});

        if (r < 0)
                kos_error_set(&in->result->error, r, "cannot remove what earlier pulls left in components/: %s",
                              strerror(-r));
        return r;
}

static uint64_t round_up(uint64_t v, uint64_t block) {
        return v > UINT64_MAX - block ? UINT64_MAX : (v + block - 1) / block * block;
}

/* Room for what is still to come, by the signed sizes, before the first
 * byte is fetched: a pull that cannot fit fails at once instead of filling
 * the ImageFS. Each blob is counted in whole blocks plus one for its inode
 * and directory entry; a download a killed pull left counts as come. */
static int check_space(struct install *in, size_t json_len, size_t sig_len) {
        struct statvfs sv;

        if (fstatvfs(in->img->components_fd, &sv) < 0)
                return -errno;
        uint64_t block = sv.f_frsize ? sv.f_frsize : 4096;
        uint64_t need = round_up(json_len, block) + round_up(sig_len, block) + 4 * block; /* boot-state, active */
        for (size_t i = 0; i < in->n_blobs; i++) {
                char tmp[KOS_SHA256_HEX_LEN + 16];
                struct stat st;
                uint64_t come = 0;

                if (!first_of_its_blob(in, i) || blob_present(in->img, in->blobs[i]))
                        continue;
                memcpy(tmp, ".tmp-pull-", 10);
                kos_hex_encode(in->blobs[i]->sha256, KOS_SHA256_LEN, tmp + 10);
                if (fstatat(in->img->components_fd, tmp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                    (uint64_t)st.st_size <= in->blobs[i]->size)
                        come = (uint64_t)st.st_size / block * block;
                uint64_t more = round_up(in->blobs[i]->size, block) - come + block;
                need = need > UINT64_MAX - more ? UINT64_MAX : need + more;
        }
        uint64_t free_bytes = (uint64_t)sv.f_bavail > UINT64_MAX / block ? UINT64_MAX : (uint64_t)sv.f_bavail * block;
        if (need > free_bytes)
                return kos_error_set(&in->result->error, -ENOSPC,
                                     "not enough space in the ImageFS: %s needs %llu bytes for what it lacks, %llu are "
                                     "free; nothing was fetched",
                                     in->manifest->name, (unsigned long long)need, (unsigned long long)free_bytes);
        return 0;
}

/* Each blob the device lacks, once, from the source, in the manifest's order. */
static int fetch_components(struct install *in, const struct kos_component_source *source) {
        if (in->options->progress)
                in->options->progress(in->done, in->total, in->options->userdata); /* the size is known now */
        for (size_t i = 0; i < in->n_blobs; i++) {
                struct kos_component_sink sink;
                int r;

                if (!first_of_its_blob(in, i))
                        continue;
                if (blob_present(in->img, in->blobs[i])) {
                        in->result->skipped++;
                        continue;
                }
                r = sink_open(in, i, ".tmp-pull-", source->resumable, &sink);
                if (r >= 0) {
                        in->result->resumed_bytes += sink.written;
                        r = source->fetch(source->userdata, in->blobs[i], in->labels[i], sink.written, &sink);
                }
                if (r >= 0)
                        r = sink_commit(&sink);
                /* A failed pull keeps nothing: neither this partial download
                 * nor the components that came whole (install_end()). */
                sink_close(&sink, false);
                if (r < 0)
                        return r;
        }
        return 0;
}

int kos_manifest_install(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *untrusted_json,
                         size_t json_len, const char *untrusted_sig, size_t sig_len, const struct kos_component_source *source,
                         const struct kos_bundle_options *options, struct kos_bundle_result *result) {
        struct install *in = install_new(img, ring, options, result);
        int r;

        if (!in)
                return -ENOMEM;
        if ((r = verify_manifest(in, untrusted_json, json_len, untrusted_sig, sig_len)) < 0 || (r = install_begin(in)) != 0)
                return install_end(in, r, false);
        /* untrusted_json and untrusted_sig are authenticated from here. */
        if ((r = remove_leftovers(in)) < 0 || (r = check_space(in, json_len, sig_len)) < 0 ||
            (r = fetch_components(in, source)) < 0)
                return install_end(in, r, false);
        return install_end(in, install_commit(in, untrusted_json, json_len, untrusted_sig, sig_len), false);
}
