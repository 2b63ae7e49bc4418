/* SPDX-License-Identifier: MIT */
/* LUKS2 encryption in place with a data shift: see datafs-reencrypt.h. */
#include "datafs-reencrypt.h"
#include "datafs-header.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"

#define SECTOR 512u

/* libcryptsetup takes its reencryption lock in /run/cryptsetup; in the
 * initrd nobody made that directory yet. */
static void make_lock_dir(void) {
        (void)mkdir("/run/cryptsetup", 0700); /* if it fails, libcryptsetup says why when it needs it */
}

static int make_header_file(const char *path) {
        _cleanup_close_ int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                return -errno;
        int r = posix_fallocate(fd, 0, 4096);
        return r > 0 ? -r : 0;
}

/* The header file formatted by the caller, the encryption initialised on
 * it (libcryptsetup moves the first segment now), then put at the head of
 * the device. */
static int init_on_header_file(const char *device, const char *header_path, uint64_t shift,
                               kos_datafs_reencrypt_format_fn format, kos_datafs_reencrypt_head_fn before_head,
                               void *userdata, const char *pass,
                               bool *ret_head_written, struct kos_error *ret_error) {
        struct crypt_device *cd = NULL;
        struct crypt_params_reencrypt params = {
                .mode = CRYPT_REENCRYPT_ENCRYPT,
                .direction = CRYPT_REENCRYPT_BACKWARD,
                .resilience = "datashift",
                .hash = "sha256",
                .data_shift = shift / 2 / SECTOR,
                .flags = CRYPT_REENCRYPT_INITIALIZE_ONLY | CRYPT_REENCRYPT_MOVE_FIRST_SEGMENT,
        };
        int r, keyslot;

        if ((r = crypt_init_data_device(&cd, header_path, device)) < 0 ||
            (r = crypt_set_data_offset(cd, shift / 2 / SECTOR)) < 0) {
                crypt_free(cd);
                return kos_error_set(ret_error, r, "libcryptsetup on %s: %s", device, strerror(-r));
        }
        if ((keyslot = format(cd, userdata, ret_error)) < 0) {
                crypt_free(cd);
                return keyslot;
        }
        /* The new segment's sector size: libcryptsetup takes it from here,
         * not from the header just formatted. */
        struct crypt_params_luks2 luks2 = {.sector_size = (uint32_t)crypt_get_sector_size(cd)};
        params.luks2 = &luks2;
        r = crypt_reencrypt_init_by_passphrase(cd, NULL, pass, strlen(pass), CRYPT_ANY_SLOT, keyslot,
                                               crypt_get_cipher(cd), crypt_get_cipher_mode(cd), &params);
        crypt_free(cd);
        if (r < 0)
                return kos_error_set(ret_error, r, "LUKS2 encryption cannot begin: %s", strerror(-r));
        cd = NULL;
        if (before_head && (r = before_head(userdata, ret_error)) < 0)
                return r;
        if ((r = crypt_init(&cd, device)) >= 0) {
                *ret_head_written = true; /* from here the device may hold (part of) the header */
                r = crypt_header_restore(cd, CRYPT_LUKS2, header_path);
        }
        crypt_free(cd);
        if (r < 0)
                return kos_error_set(ret_error, r, "cannot put the LUKS2 header at the head of %s: %s", device,
                                     strerror(-r));
        return r;
}

int kos_datafs_reencrypt_begin(const char *device, const char *header_path, uint64_t shift,
                               kos_datafs_reencrypt_format_fn format, kos_datafs_reencrypt_head_fn before_head,
                               void *userdata, const char *pass,
                               bool *ret_head_written, struct kos_error *ret_error) {
        int r;

        *ret_head_written = false;
        if (shift == 0 || shift % (2 * 4096) != 0)
                return kos_error_set(ret_error, -EINVAL, "the data shift %llu is not a multiple of 8 KiB",
                                     (unsigned long long)shift);
        make_lock_dir();
        if ((r = make_header_file(header_path)) < 0)
                return kos_error_set(ret_error, r, "cannot make %s: %s", header_path, strerror(-r));
        r = init_on_header_file(device, header_path, shift, format, before_head, userdata, pass, ret_head_written,
                                ret_error);
        (void)unlink(header_path);
        return r;
}

struct progress {
        kos_datafs_reencrypt_progress_fn fn;
        void *userdata;
};

/* libcryptsetup's callback after each hotzone (and once at the start). */
static int on_progress(uint64_t total, uint64_t done, void *usrptr) {
        const struct progress *p = usrptr;

        if (p->fn)
                p->fn(done, total, p->userdata);
        return 0; /* never stop: a power cut is the only interruption */
}

/* --- A cut after the last hotzone -----------------------------------------
 * libcryptsetup 2.6.1 ends an encryption with one more header update
 * (reencrypt_teardown_ok(): the moved first segment wiped, the reencrypt
 * key slot destroyed, the backup segments erased, the requirement
 * "online-reencrypt-v2" dropped). A cut before it leaves a header whose
 * data segment already covers all the data, encrypted, which its resume
 * refuses ("Failed to set device segments for next reencryption hotzone",
 * -EIO; neither CRYPT_REENCRYPT_RECOVERY nor crypt_repair() clears it).
 * That update is done here instead, one header copy at a time, as
 * libcryptsetup writes its own (LUKS2_disk_hdr_write(): primary, sync,
 * secondary, sync), so that a disk with a volatile write cache never holds
 * two torn copies: first libcryptsetup's repair (crypt_repair()) makes
 * both copies whole, and the primary must then verify, checksum and all,
 * and be the newer or equal copy; then the secondary copy alone is written
 * from it, with the new JSON, a higher sequence number and its checksum,
 * then a sync; the primary, still the old header, is untouched until
 * then. libcryptsetup's read of the header (LUKS2_disk_hdr_read(): of two
 * valid copies the one with the higher sequence number wins, a torn one
 * is rewritten from the other) then brings the primary up to date itself
 * (crypt_repair() again), with a sync of its own. A cut while the secondary is written leaves the old primary,
 * and the next boot finishes again; a cut after its sync leaves the new
 * secondary, which loads. The key slot areas are not written. At the end
 * the header that loads must be the finished one: a secondary
 * libcryptsetup rejects is rewritten by its repair from the old primary
 * without an error. */

static bool has_flag_prefix(json_t *segment, const char *prefix) {
        json_t *flag;
        size_t i;

        json_array_foreach(json_object_get(segment, "flags"), i, flag)
                if (json_is_string(flag) && strncmp(json_string_value(flag), prefix, strlen(prefix)) == 0)
                        return true;
        return false;
}

static json_t *requirements(json_t *root) {
        return json_object_get(json_object_get(json_object_get(root, "config"), "requirements"), "mandatory");
}

/* The requirement of an encryption in progress is still set, and the one
 * segment that is not a backup is "0": crypt, from the data offset to the
 * end of the device. */
static bool all_encrypted(json_t *root, uint64_t data_offset) {
        json_t *segments = json_object_get(root, "segments"), *segment, *req;
        const char *id;
        char offset[32];
        bool required = false;
        size_t i;

        json_array_foreach(requirements(root), i, req)
                required |= json_is_string(req) && strncmp(json_string_value(req), "online-reencrypt", 16) == 0;
        if (!required || !json_is_object(segments))
                return false;
        snprintf(offset, sizeof offset, "%llu", (unsigned long long)data_offset);
        json_object_foreach(segments, id, segment)
                if (!has_flag_prefix(segment, "backup-") &&
                    (strcmp(id, "0") != 0 || !json_is_string(json_object_get(segment, "type")) ||
                     strcmp(json_string_value(json_object_get(segment, "type")), "crypt") != 0 ||
                     !json_is_string(json_object_get(segment, "offset")) ||
                     strcmp(json_string_value(json_object_get(segment, "offset")), offset) != 0 ||
                     !json_is_string(json_object_get(segment, "size")) ||
                     strcmp(json_string_value(json_object_get(segment, "size")), "dynamic") != 0 ||
                     json_object_get(segment, "flags")))
                        return false;
        return json_object_get(segments, "0") != NULL;
}

/* The moved first segment (a plain-text copy of the file system's first
 * shift / 2 bytes) of root: 0 with its offset and size, -ENOENT. */
static int moved_segment(json_t *root, uint64_t *ret_offset, uint64_t *ret_size) {
        json_t *segment;
        const char *id;

        json_object_foreach(json_object_get(root, "segments"), id, segment)
                if (has_flag_prefix(segment, "backup-moved-segment")) {
                        const char *o = json_string_value(json_object_get(segment, "offset"));
                        const char *z = json_string_value(json_object_get(segment, "size"));
                        char *end1, *end2;
                        if (!o || !z)
                                return -EBADMSG;
                        errno = 0;
                        *ret_offset = strtoull(o, &end1, 10);
                        *ret_size = strtoull(z, &end2, 10);
                        return errno || *end1 || *end2 || end1 == o || end2 == z ? -EBADMSG : 0;
                }
        return -ENOENT;
}

/* The moved first segment [offset, offset + size) is where KOS's encryption
 * in place puts it (CRYPT_REENCRYPT_MOVE_FIRST_SEGMENT): shift bytes (half
 * the shift kos_datafs_reencrypt_begin() was given, the data offset) at the
 * end of the device on fd. 0, or -EBADMSG with ret_error filled. */
static int moved_segment_is_kos(int fd, uint64_t offset, uint64_t size, uint64_t shift,
                                struct kos_error *ret_error) {
        struct stat st;
        uint64_t bytes = 0;

        if (fstat(fd, &st) < 0)
                return kos_error_set(ret_error, -errno, "cannot stat the device: %s", strerror(errno));
        if (S_ISREG(st.st_mode))
                bytes = (uint64_t)st.st_size;
        else if (!S_ISBLK(st.st_mode))
                return kos_error_set(ret_error, -ENOTBLK, "the LUKS2 header's device is neither a block device nor "
                                                          "a file");
        else if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
                return kos_error_set(ret_error, -errno, "cannot read the device's size: %s", strerror(errno));
        if (shift == 0 || size != shift || bytes < shift || offset != bytes - shift)
                return kos_error_set(ret_error, -EBADMSG,
                                     "the LUKS2 header's moved segment is %llu bytes at %llu, not the %llu bytes "
                                     "at the end of the device (%llu bytes) where KOS's encryption in place puts "
                                     "it: nothing is wiped",
                                     (unsigned long long)size, (unsigned long long)offset,
                                     (unsigned long long)shift, (unsigned long long)bytes);
        return 0;
}

/* root as libcryptsetup's last update leaves it: the backup segments, the
 * reencrypt key slot and the digests of no other key slot gone, every
 * digest bound to segment "0" alone, the requirement dropped. */
static void finish_json(json_t *root) {
        json_t *segments = json_object_get(root, "segments"), *keyslots = json_object_get(root, "keyslots");
        json_t *digests = json_object_get(root, "digests"), *req = requirements(root), *v, *k;
        const char *id;
        void *tmp;
        size_t i;

        json_object_foreach_safe(segments, tmp, id, v)
                if (strcmp(id, "0") != 0)
                        json_object_del(segments, id);
        json_object_foreach_safe(keyslots, tmp, id, v)
                if (json_is_string(json_object_get(v, "type")) &&
                    strcmp(json_string_value(json_object_get(v, "type")), "reencrypt") == 0)
                        json_object_del(keyslots, id);
        json_object_foreach_safe(digests, tmp, id, v) {
                json_t *kept = json_array();
                json_array_foreach(json_object_get(v, "keyslots"), i, k)
                        if (json_is_string(k) && json_object_get(keyslots, json_string_value(k)))
                                json_array_append(kept, k);
                if (json_array_size(kept) == 0)
                        json_object_del(digests, id);
                else {
                        json_object_set_new(v, "keyslots", kept);
                        json_object_set_new(v, "segments", json_pack("[s]", "0"));
                        kept = NULL;
                }
                json_decref(kept);
        }
        for (i = json_array_size(req); i-- > 0;)
                if (json_is_string(json_array_get(req, i)) &&
                    strncmp(json_string_value(json_array_get(req, i)), "online-reencrypt", 16) == 0)
                        json_array_remove(req, i);
        if (req && json_array_size(req) == 0) {
                json_t *config = json_object_get(root, "config");
                json_object_del(json_object_get(config, "requirements"), "mandatory");
                if (json_object_size(json_object_get(config, "requirements")) == 0)
                        json_object_del(config, "requirements");
        }
}

/* One header copy of size bytes at area (binary header, then JSON): json
 * put in, the sequence number seqid, the SHA-256 checksum again. */
static int rewrite_copy(uint8_t *area, size_t size, const char *json, uint64_t seqid) {
        uint8_t digest[KOS_SHA256_LEN];
        size_t len = strlen(json);
        uint64_t be = htobe64(seqid);
        int r;

        if (len >= size - LUKS2_BINARY_HEADER)
                return -E2BIG;
        memset(area + LUKS2_BINARY_HEADER, 0, size - LUKS2_BINARY_HEADER);
        memcpy(area + LUKS2_BINARY_HEADER, json, len);
        memcpy(area + LUKS2_SEQID_AT, &be, sizeof be);
        memset(area + LUKS2_CSUM_AT, 0, 64);
        if ((r = kos_sha256(area, size, digest)) < 0)
                return r;
        memcpy(area + LUKS2_CSUM_AT, digest, sizeof digest);
        return 0;
}

/* root's config.json_size is that of copies of size bytes: the JSON area
 * the new copy fills is the one libcryptsetup will check it against. */
static bool json_size_is(json_t *root, uint64_t size) {
        const char *json_size = json_string_value(json_object_get(json_object_get(root, "config"), "json_size"));
        char want[32];

        snprintf(want, sizeof want, "%llu", (unsigned long long)(size - LUKS2_BINARY_HEADER));
        return json_size && strcmp(json_size, want) == 0;
}

static int read_exactly(int fd, void *buf, size_t len, off_t at) {
        ssize_t n = pread(fd, buf, len, at);
        return n < 0 ? -errno : n != (ssize_t)len ? -EIO : 0;
}

static int write_exactly(int fd, const void *buf, size_t len, off_t at) {
        ssize_t n = pwrite(fd, buf, len, at);
        return n < 0 ? -errno : n != (ssize_t)len ? -EIO : 0;
}

/* Both header copies on fd, read into *ret_area (malloc'd, 2 * *ret_size
 * bytes), the primary checked to be whole and the copy libcryptsetup
 * loaded (a secondary that verifies is not newer): the one valid copy,
 * then, while the secondary is written. The old secondary's bytes are not
 * used: it may be torn, and it is overwritten anyway. The primary's
 * sequence number in *ret_seqid. 0, or a negative errno with ret_error
 * filled. */
static int read_primary(int fd, uint8_t **ret_area, uint64_t *ret_size, uint64_t *ret_seqid,
                        struct kos_error *ret_error) {
        _cleanup_free_ uint8_t *area = NULL;
        uint8_t bin[LUKS2_BINARY_HEADER];
        uint64_t size, seqid[2];
        int r;

        if ((r = read_exactly(fd, bin, sizeof bin, 0)) < 0)
                return kos_error_set(ret_error, r, "cannot read the LUKS2 header: %s", strerror(-r));
        memcpy(&size, bin + LUKS2_HDR_SIZE_AT, sizeof size);
        size = be64toh(size);
        if (size < LUKS2_HEADER_MIN || size > LUKS2_HEADER_MAX || (size & (size - 1)) != 0)
                return kos_error_set(ret_error, -EBADMSG, "the LUKS2 header's size %llu is not one of a copy",
                                     (unsigned long long)size);
        if (!(area = malloc(2 * size)))
                return kos_error_set(ret_error, -ENOMEM, "cannot hold the LUKS2 header");
        if ((r = read_exactly(fd, area, 2 * size, 0)) < 0)
                return kos_error_set(ret_error, r, "cannot read the LUKS2 header: %s", strerror(-r));
        if ((r = datafs_header_copy_verify(area, size, 0, &seqid[0])) < 0)
                return kos_error_set(ret_error, r,
                                     "the LUKS2 header's primary copy does not verify after libcryptsetup's repair "
                                     "(magic, size, offset or SHA-256 checksum): the secondary, maybe the only "
                                     "valid copy, is not written");
        if (datafs_header_copy_verify(area + size, size, 1, &seqid[1]) == 0 && seqid[1] > seqid[0])
                return kos_error_set(ret_error, -ESTALE,
                                     "the LUKS2 header's primary copy (sequence number %llu) is older than the "
                                     "secondary (%llu) after libcryptsetup's repair: the secondary is not written",
                                     (unsigned long long)seqid[0], (unsigned long long)seqid[1]);
        if (seqid[0] == UINT64_MAX)
                return kos_error_set(ret_error, -EOVERFLOW, "the LUKS2 header's sequence number is at its end");
        *ret_area = TAKE_PTR(area);
        *ret_size = size;
        *ret_seqid = seqid[0];
        return 0;
}

/* The secondary copy in area (both copies, read_primary()'s) made anew
 * from the primary, with root as its JSON and the sequence number seqid,
 * then written to fd and synced; the primary and the key slot areas are
 * not written. This write is made outside libcryptsetup's metadata lock:
 * in the initrd one process, this one, touches the device. 0, or a
 * negative errno with ret_error filled. */
static int write_secondary_copy(int fd, uint8_t *area, uint64_t size, uint64_t seqid, json_t *root,
                                struct kos_error *ret_error) {
        _cleanup_free_ char *json = NULL;
        uint64_t hdr_offset = htobe64(size);
        int r;

        if (!json_size_is(root, size))
                return kos_error_set(ret_error, -EBADMSG, "the LUKS2 header's config.json_size is not %llu",
                                     (unsigned long long)(size - LUKS2_BINARY_HEADER));
        if (!(json = json_dumps(root, JSON_COMPACT)))
                return kos_error_set(ret_error, -ENOMEM, "cannot write the LUKS2 header's JSON");
        /* As libcryptsetup's recovery makes one copy from the other. */
        memcpy(area + size, area, size);
        memcpy(area + size, "SKUL\xba\xbe", 6);
        memcpy(area + size + LUKS2_HDR_OFFSET_AT, &hdr_offset, sizeof hdr_offset);
        if ((r = rewrite_copy(area + size, size, json, seqid)) < 0 ||
            (r = write_exactly(fd, area + size, size, (off_t)size)) < 0 || (r = fsync(fd) < 0 ? -errno : 0) < 0)
                return kos_error_set(ret_error, r, "cannot write the finished LUKS2 header's secondary copy: %s",
                                     strerror(-r));
        return 0;
}

/* root: cd's header JSON, dumped afresh. NULL when it is not readable. */
static json_t *header_json(struct crypt_device *cd) {
        const char *dump;

        return crypt_dump_json(cd, &dump, 0) < 0 ? NULL : json_loads(dump, 0, NULL);
}

/* cd (its header loaded, all encrypted, the passphrase proven) finished by
 * hand, then loaded again: 0, or a negative errno with ret_error filled. */
static int finish_by_hand(struct crypt_device *cd, int keyslot, const char *pass, uint64_t shift,
                          struct kos_error *ret_error) {
        json_auto_t *root = NULL; /* jansson's cleanup attribute */
        _cleanup_free_ uint8_t *area = NULL;
        uint64_t offset, size, header_size, seqid;
        int r;

        /* Both copies made whole first (libcryptsetup rewrites a torn or
         * older copy from the other), since the secondary is written from
         * the primary; a load may have skipped that (its recovery needs the
         * metadata lock, and its failure is only a debug line). The header
         * is read again from the disk: its JSON is what the repair loaded. */
        if ((r = crypt_repair(cd, CRYPT_LUKS2, NULL)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup cannot repair the LUKS2 header: %s", strerror(-r));
        if (!(root = header_json(cd)) || !all_encrypted(root, crypt_get_data_offset(cd) * SECTOR))
                return kos_error_set(ret_error, -EBADMSG, "after libcryptsetup's repair the LUKS2 header is not "
                                                          "that of an encryption with every hotzone done");
        /* The segments, the moved one's range included, are the header's,
         * which anyone who can write the disk wrote (around the device's own
         * key slot): libcryptsetup's check of the encryption's metadata
         * against its digest, keyed by the volume key (an activation
         * without a name, LUKS2_reencrypt_digest_verify()), before anything
         * is wiped or written. */
        if ((r = crypt_activate_by_passphrase(cd, NULL, keyslot, pass, strlen(pass), 0)) < 0)
                return kos_error_set(ret_error, r, "the LUKS2 header's encryption metadata does not verify with its "
                                                   "volume key (libcryptsetup's reencryption digest): %s; nothing "
                                                   "is wiped or written", strerror(-r));
        /* The header is on the data device (no metadata device of its own):
         * early_find_device()'s /dev/<name>, on the initrd's devtmpfs (no
         * udev, so no symlink there). */
        const char *device = crypt_get_metadata_device_name(cd) ?: crypt_get_device_name(cd);
        if (!device)
                return kos_error_set(ret_error, -ENODEV, "libcryptsetup names no device for the LUKS2 header");
        _cleanup_close_ int fd = open(device, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return kos_error_set(ret_error, -errno, "cannot open %s: %s", device, strerror(errno));
        /* Checked before anything is written, the wipe too. */
        if ((r = read_primary(fd, &area, &header_size, &seqid, ret_error)) < 0)
                return r;
        /* libcryptsetup's own order: the plain-text copy goes first. The
         * range is the header's, which anyone who can write the disk wrote:
         * it is wiped only where KOS's encryption put that copy, the data
         * shift's length at the end of the device. */
        if ((r = moved_segment(root, &offset, &size)) >= 0 &&
            (r = moved_segment_is_kos(fd, offset, size, shift / 2, ret_error)) < 0)
                return r;
        if (r >= 0 && (r = crypt_wipe(cd, NULL, CRYPT_WIPE_RANDOM, offset, size, 1 << 20, 0, NULL, NULL)) < 0)
                return kos_error_set(ret_error, r, "cannot wipe the moved first segment: %s", strerror(-r));
        if (r < 0 && r != -ENOENT)
                return kos_error_set(ret_error, r, "the LUKS2 header's moved segment is not readable");
        finish_json(root);
        if ((r = write_secondary_copy(fd, area, header_size, seqid + 1, root, ret_error)) < 0)
                return r;
        /* The primary, now the older copy, rewritten by libcryptsetup from
         * the secondary (a repair reads without the blkid probe that a
         * plain load's recovery needs first). */
        if ((r = crypt_repair(cd, CRYPT_LUKS2, NULL)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup cannot bring the LUKS2 header's primary copy up "
                                                   "to date: %s", strerror(-r));
        if ((r = crypt_load(cd, CRYPT_LUKS2, NULL)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup cannot load the finished LUKS2 header: %s",
                                     strerror(-r));
        /* A secondary libcryptsetup rejects is rewritten by its repair
         * from the old primary, without an error: the header that loaded
         * must be the finished one. */
        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
                return kos_error_set(ret_error, -EBADMSG, "the LUKS2 header that loads after the finishing update is "
                                                          "not the finished one (libcryptsetup rejected the copy "
                                                          "written here and kept the old header)");
        return 0;
}

/* 1 when cd's header is that of an encryption whose every hotzone is done
 * but whose last header update did not land, and it was finished here; 0
 * when it is not; or a negative errno with ret_error filled. */
static int finish_if_all_encrypted(struct crypt_device *cd, int keyslot, const char *pass, uint64_t shift,
                                   struct kos_error *ret_error) {
        uint8_t volume_key[256];
        size_t key_size = sizeof volume_key;
        const char *dump;
        json_t *root;
        int r;

        if (crypt_dump_json(cd, &dump, 0) < 0 || !(root = json_loads(dump, 0, NULL)))
                return 0; /* libcryptsetup's resume says what is wrong */
        if (!all_encrypted(root, crypt_get_data_offset(cd) * SECTOR)) {
                json_decref(root);
                return 0;
        }
        /* The header is changed only by the holder of a key slot. */
        r = crypt_volume_key_get(cd, keyslot, (char *)volume_key, &key_size, pass, strlen(pass));
        explicit_bzero(volume_key, sizeof volume_key);
        if (r < 0) {
                json_decref(root);
                return kos_error_set(ret_error, r, "the passphrase does not open key slot %d: %s", keyslot,
                                     strerror(-r));
        }
        json_decref(root);
        r = finish_by_hand(cd, keyslot, pass, shift, ret_error);
        return r < 0 ? r : 1;
}

int kos_datafs_reencrypt_run(struct crypt_device *cd, int keyslot, const char *pass, uint64_t shift,
                             kos_datafs_reencrypt_progress_fn progress, void *userdata, struct kos_error *ret_error) {
        struct crypt_params_reencrypt params = {
                .mode = CRYPT_REENCRYPT_ENCRYPT,
                .direction = CRYPT_REENCRYPT_BACKWARD,
                .flags = CRYPT_REENCRYPT_RESUME_ONLY,
        };
        const struct crypt_params_reencrypt recovery = {.flags = CRYPT_REENCRYPT_RECOVERY};
        struct progress p = {progress, userdata};
        int r;

        make_lock_dir();
        /* A cut inside a hotzone: libcryptsetup recovers it first (from the
         * datashift resilience), then the encryption goes on. The old key
         * slot is the token's too, never CRYPT_ANY_SLOT: libcryptsetup
         * would try every key slot a written header binds to the old
         * segment, each with the KDF the header sets, before it checks the
         * encryption's metadata (an encryption of plain data has no old
         * key slot, so this only shuts that door). */
        if (crypt_reencrypt_status(cd, NULL) == CRYPT_REENCRYPT_CRASH &&
            (r = crypt_reencrypt_init_by_passphrase(cd, NULL, pass, strlen(pass), keyslot, keyslot, NULL, NULL,
                                                    &recovery)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup does not recover the hotzone a cut interrupted: %s",
                                     strerror(-r));
        if ((r = finish_if_all_encrypted(cd, keyslot, pass, shift, ret_error)) != 0)
                return r;
        if ((r = crypt_reencrypt_init_by_passphrase(cd, NULL, pass, strlen(pass), keyslot, keyslot, NULL, NULL,
                                                    &params)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup does not load the encryption in progress: %s",
                                     strerror(-r));
        if ((r = crypt_reencrypt_run(cd, on_progress, &p)) < 0)
                return kos_error_set(ret_error, r, "the encryption stopped: %s", strerror(-r));
        return 0;
}
