/* SPDX-License-Identifier: MIT */
/* In-place encryption of a plain ext4 DataFS: see datafs-encrypt.h. */
#include "datafs-encrypt.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datafs-generation.h"
#include "datafs-reencrypt.h"
#include "early.h"
#include "util.h"

#define E2FSCK "/sbin/e2fsck"
#define RESIZE2FS "/sbin/resize2fs"
#define PLANTED "it holds ext4, not LUKS2, and the signed cmdline says kos.datafs=luks2: a plain file system is never mounted there"

/* argv[0] with argv, its output on the console: its exit status, or a
 * negative errno. */
static int run(char *const argv[]) {
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execv(argv[0], argv);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

/* The partition's size and its ext4's block size (superblock at 1024:
 * s_log_block_size at 24, s_magic 0xEF53 at 56). */
static int read_sizes(const char *device, uint64_t *ret_bytes, uint32_t *ret_block, struct kos_error *ret_error) {
        _cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
        uint8_t sb[1024];
        uint32_t log;
        uint16_t magic;

        if (fd < 0 || ioctl(fd, BLKGETSIZE64, ret_bytes) < 0 || pread(fd, sb, sizeof sb, 1024) != (ssize_t)sizeof sb)
                return kos_error_set(ret_error, -EIO, "cannot read %s: %m", device);
        memcpy(&log, sb + 24, sizeof log);
        memcpy(&magic, sb + 56, sizeof magic);
        if (le16toh(magic) != 0xEF53 || le32toh(log) > 6)
                return kos_error_set(ret_error, -EINVAL, "%s has no ext4 superblock", device);
        *ret_block = 1024u << le32toh(log);
        return 0;
}

/* e2fsck -f, then resize2fs to the partition less DATAFS_ENCRYPT_SHIFT
 * (a no-op when a cut boot already did it). ext4's own journal and
 * resize2fs's order of writes (blocks moved first, the superblock's size
 * last) cover a cut here; the next boot checks again. */
static int shrink(struct datafs *d, uint64_t bytes, struct kos_error *ret_error) {
        char target[32];
        char *fsck[] = {E2FSCK, "-f", "-y", d->device, NULL}, *resize[] = {RESIZE2FS, d->device, target, NULL};
        int r;

        if (bytes < 2 * DATAFS_ENCRYPT_SHIFT)
                return kos_error_set(ret_error, -ENOSPC,
                                     "the partition (%llu MiB) is too small to give up %llu MiB for LUKS2",
                                     (unsigned long long)(bytes >> 20), DATAFS_ENCRYPT_SHIFT >> 20);
        snprintf(target, sizeof target, "%lluK", (unsigned long long)((bytes - DATAFS_ENCRYPT_SHIFT) / 4096 * 4));
        early_log("DataFS %s: checking its ext4 (e2fsck -f)", d->device);
        if ((r = run(fsck)) < 0 || r >= 4)
                return kos_error_set(ret_error, -EIO, "e2fsck -f %s: %s", d->device,
                                     r < 0 ? strerror(-r) : "errors left uncorrected");
        d->fs_shrunk = true; /* e2fsck -y may have written */
        early_log("DataFS %s: shrinking its ext4 to %s for the LUKS2 header (resize2fs)", d->device, target);
        if ((r = run(resize)) != 0)
                return kos_error_set(ret_error, -EIO, "resize2fs %s %s: %s", d->device, target,
                                     r < 0 ? strerror(-r) : "failed");
        return 0;
}

struct format {
        const uint8_t *volume_key;
        const char *pass;
        uint32_t sector_size;
        const struct datafs_sealed *k;
        uint64_t generation;
        struct kos_tpm *t;
        const char *device;
};

/* fsync of the block device: its volatile write cache flushed. */
static int sync_device(const char *device) {
        int fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY), r = 0;

        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int format_header(struct crypt_device *cd, void *userdata, struct kos_error *ret_error) {
        const struct format *f = userdata;
        int slot = datafs_write_luks2(cd, f->volume_key, f->pass, f->sector_size, f->k, f->generation, ret_error);

        if (slot >= 0)
                datafs_add_recovery_slot(cd, f->volume_key, slot + 1);
        return slot;
}

/* Just before the header's first byte, in this order:
 * 1. the device synced: libcryptsetup copied the first segment into the
 *    free tail without a sync of its own, and the head is about to be
 *    overwritten;
 * 2. the header-being-written marker defined: a cut that tears the head so
 *    that libblkid finds nothing then locks the partition instead of
 *    letting it be formatted as empty (while the pending marker is there
 *    too, the head is untouched and a plain ext4 is begun again);
 * 3. the conversion-pending marker removed: a cut while the header is
 *    written may leave an ext4 superblock over a head already partly
 *    overwritten, which a new beginning would copy again over the good
 *    copy in the tail. */
static int before_header(void *userdata, struct kos_error *ret_error) {
        const struct format *f = userdata;
        int r = sync_device(f->device);

        if (r < 0)
                return kos_error_set(ret_error, r, "cannot sync %s before its head is written: %s", f->device,
                                     strerror(-r));
        if ((r = kos_datafs_marker_define(f->t, KOS_DATAFS_WRITING_INDEX)) < 0)
                return kos_error_set(ret_error, r, "cannot define the header-being-written marker (TPM NV 0x%08x): %s",
                                     KOS_DATAFS_WRITING_INDEX, r == -EPERM ? "an index there is not the one KOS defines"
                                                                           : strerror(-r));
        r = kos_datafs_pending_remove(f->t);
        return r < 0 ? kos_error_set(ret_error, r, "cannot remove the conversion-pending marker (TPM NV 0x%08x): %s",
                                     KOS_DATAFS_PENDING_INDEX, strerror(-r))
                     : 0;
}

/* The marker goes when no counter is there (without it, it says nothing);
 * with the counter it stays, and says to begin again. */
static void remove_pending_without_counter(struct kos_tpm *t) {
        uint64_t generation;

        if (kos_datafs_generation_read(t, &generation) != -ENOENT) {
                early_log("DataFS: the DataFS generation counter is there: the conversion-pending marker stays with "
                          "it");
                return;
        }
        if (kos_datafs_pending_remove(t) < 0)
                early_log("DataFS: cannot remove the conversion-pending marker (TPM NV 0x%08x): harmless without "
                          "the counter", KOS_DATAFS_PENDING_INDEX);
}

/* The conversion-pending marker, the secrets, the generation (defined now:
 * from here a plain ext4 on this device is planted unless the marker is
 * there), the seal, and the header put on the partition, the marker
 * removed just before. */
static int begin(struct datafs *d, struct kos_tpm *t, const uint8_t values[24][KOS_SHA256_LEN], uint32_t sector_size,
                 int *ret_keyslot, char pass[static DATAFS_PASSPHRASE_MAX], struct kos_error *ret_error) {
        uint8_t secret[DATAFS_SECRET_LEN], volume_key[DATAFS_VOLUME_KEY_LEN];
        struct datafs_sealed k;
        uint64_t generation;
        bool head_written = false;
        int r;

        if (getrandom(secret, sizeof secret, 0) != sizeof secret ||
            getrandom(volume_key, sizeof volume_key, 0) != sizeof volume_key)
                return kos_error_set(ret_error, -EIO, "getrandom: %m");
        if ((r = kos_datafs_pending_define(t)) < 0 || (r = kos_datafs_generation_provision(t, &generation)) < 0) {
                explicit_bzero(secret, sizeof secret);
                explicit_bzero(volume_key, sizeof volume_key);
                remove_pending_without_counter(t);
                return kos_error_set(ret_error, r, "cannot define the DataFS generation (TPM NV 0x%08x) and the "
                                     "conversion-pending marker (TPM NV 0x%08x): %s", KOS_DATAFS_GENERATION_INDEX,
                                     KOS_DATAFS_PENDING_INDEX,
                                     r == -EPERM ? "an index there is not the one KOS defines" : strerror(-r));
        }
        early_log("DataFS %s: DataFS generation %llu (TPM NV 0x%08x), the encryption in place marked pending (NV "
                  "0x%08x): sealing its key", d->device, (unsigned long long)generation, KOS_DATAFS_GENERATION_INDEX,
                  KOS_DATAFS_PENDING_INDEX);
        r = datafs_passphrase(secret, generation, pass);
        if (r >= 0)
                r = datafs_seal_new(t, secret, values, &k, ret_error);
        explicit_bzero(secret, sizeof secret);
        if (r >= 0) {
                d->tpm_used = true;
                struct format f = {volume_key, pass, sector_size, &k, generation, t, d->device};
                r = kos_datafs_reencrypt_begin(d->device, DATAFS_ENCRYPT_HEADER_TMP, DATAFS_ENCRYPT_SHIFT,
                                               format_header, before_header, &f, pass, &head_written, ret_error);
        }
        explicit_bzero(volume_key, sizeof volume_key);
        /* Still the plain ext4, the marker not yet removed: the counter goes
         * again, so that the next boot begins anew, then the marker. */
        if (r < 0 && !head_written) {
                /* First: left alone, it would lock the untouched ext4 for good. */
                if (kos_datafs_marker_remove(t, KOS_DATAFS_WRITING_INDEX) < 0)
                        early_log("DataFS: cannot remove the header-being-written marker (TPM NV 0x%08x)",
                                  KOS_DATAFS_WRITING_INDEX);
                if (kos_tpm_nv_undefine_space(t, KOS_DATAFS_GENERATION_INDEX) < 0) /* provisioned above: ours */
                        early_log("DataFS: cannot remove the DataFS generation counter again");
                remove_pending_without_counter(t);
        }
        *ret_keyslot = 0; /* datafs_write_luks2's first slot on a new header */
        return r;
}

struct progress {
        const char *device;
        unsigned last_tenth;
};

static void on_progress(uint64_t done, uint64_t total, void *userdata) {
        struct progress *p = userdata;
        unsigned tenth = total ? (unsigned)(done * 10 / total) : 10;

        if (done == 0 || tenth == p->last_tenth)
                return;
        p->last_tenth = tenth;
        early_log("DataFS %s: encrypting in place: %llu of %llu MiB (%u%%)", p->device,
                  (unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
                  (unsigned)(done * 100 / total));
}

static int run_encryption(struct crypt_device *cd, const char *device, int keyslot, const char *pass,
                          struct kos_error *ret_error) {
        struct progress p = {device, 0};
        double start = early_uptime();
        int r;

        r = kos_datafs_reencrypt_run(cd, keyslot, pass, DATAFS_ENCRYPT_SHIFT, on_progress, &p, ret_error);
        if (r < 0)
                return r;
        if (r == 1)
                early_log("DataFS %s: every hotzone was encrypted before the cut, not the LUKS2 header's last update "
                          "(which libcryptsetup does not resume): written here", device);
        early_log("DataFS %s: encrypted in place (%.1f s)", device, early_uptime() - start);
        return 0;
}

int datafs_encrypt_resume(struct crypt_device *cd, const char *device, int keyslot, const char *pass,
                          struct kos_error *ret_error) {
        early_log("DataFS %s: LUKS2 encryption in place in progress: resuming it", device);
        return run_encryption(cd, device, keyslot, pass, ret_error);
}

/* Only a device whose DataFS was never encrypted (no generation counter in
 * its TPM) or whose encryption in place was cut before its header was
 * written (the counter and the conversion-pending marker), and the verified
 * chain. Returns true with t open when it may. */
static bool may_encrypt(struct datafs *d, bool marker, struct kos_tpm *t, uint8_t values[24][KOS_SHA256_LEN]) {
        struct kos_error why = KOS_ERROR_NULL;
        uint64_t generation;
        int r;

        if (!marker) {
                datafs_lock(d, PLANTED " (only the verified chain encrypts a plain DataFS in place)");
                return false;
        }
        if ((r = kos_tpm_open(t)) < 0) {
                datafs_lock(d, PLANTED " (%s to seal a key for encrypting it in place)",
                            r == -ENODEV ? "there is no TPM" : strerror(-r));
                return false;
        }
        /* A cut while its header was first written left the ext4's
         * superblock: never begun again over a head partly overwritten. With
         * the pending marker still there, the cut fell before the head was
         * touched: begun again below. */
        int writing = kos_datafs_marker_read(t, KOS_DATAFS_WRITING_INDEX), pending = kos_datafs_pending_read(t);
        if (writing != 0 && !(writing == 1 && pending == 1)) {
                kos_tpm_close(t);
                datafs_lock(d, "it holds ext4, and %s: never begun again", datafs_writing_marker_why(writing));
                return false;
        }
        /* The counter and the marker: a begin() a power cut stopped before
         * its header was written; it begins again. */
        if ((r = kos_datafs_generation_read(t, &generation)) >= 0 && pending == 1)
                early_log("DataFS %s: an encryption in place was cut before its header was written: starting it "
                          "again", d->device);
        else if (r != -ENOENT) {
                kos_tpm_close(t);
                datafs_lock(d, PLANTED " (%s)", r >= 0 ? "this TPM's DataFS generation counter says it was encrypted before"
                                                       : strerror(-r));
                return false;
        }
        if (datafs_read_seal_values(t, values, &why) < 0) {
                kos_tpm_close(t);
                datafs_lock(d, PLANTED " (%s)", why.msg);
                return false;
        }
        return true;
}

void datafs_encrypt_plain(struct datafs *d, bool marker) {
        uint8_t values[24][KOS_SHA256_LEN] = {{0}};
        char pass[DATAFS_PASSPHRASE_MAX];
        struct kos_error why = KOS_ERROR_NULL;
        struct crypt_device *cd = NULL;
        struct kos_tpm t;
        uint64_t bytes;
        uint32_t block = 0; /* set when read_sizes() succeeds: gcc cannot see kos_error_set() fails */
        int keyslot = 0, r;

        if (!may_encrypt(d, marker, &t, values))
                return;
        early_log("DataFS %s: a plain ext4 of a release before kos.datafs=luks2, on a device whose DataFS was never "
                  "encrypted: encrypting it in place", d->device);
        if ((r = read_sizes(d->device, &bytes, &block, &why)) >= 0 && (r = shrink(d, bytes, &why)) >= 0)
                r = begin(d, &t, values, block < 4096 ? block : 4096, &keyslot, pass, &why);
        if (r >= 0 && ((r = crypt_init(&cd, d->device)) < 0 || (r = crypt_load(cd, CRYPT_LUKS2, NULL)) < 0))
                kos_error_set(&why, r, "the LUKS2 header just written does not load: %s", strerror(-r));
        /* The header is whole on the disk once synced (crypt_header_restore()
         * syncs too, but drops fsync's result): the next boot opens it
         * whatever happens now. */
        if (r >= 0 && (r = sync_device(d->device)) < 0)
                kos_error_set(&why, r, "cannot sync the LUKS2 header just written: %s", strerror(-r));
        if (r >= 0 && kos_datafs_marker_remove(&t, KOS_DATAFS_WRITING_INDEX) < 0)
                early_log("DataFS %s: cannot remove the header-being-written marker (TPM NV 0x%08x): the next boot "
                          "that opens the volume does", d->device, KOS_DATAFS_WRITING_INDEX);
        kos_tpm_close(&t);
        if (r >= 0) {
                early_log("DataFS %s: LUKS2 header written (data offset %llu MiB): encrypting in place", d->device,
                          DATAFS_ENCRYPT_SHIFT >> 21);
                d->encrypting = true;
                r = run_encryption(cd, d->device, keyslot, pass, &why);
        }
        if (r >= 0 && (r = crypt_activate_by_passphrase(cd, DATAFS_MAPPER_NAME, keyslot, pass, strlen(pass), 0)) < 0)
                kos_error_set(&why, r, "activate: %s", strerror(-r));
        explicit_bzero(pass, sizeof pass);
        crypt_free(cd);
        if (r < 0) {
                datafs_lock(d, "its encryption in place failed: %s", why.msg);
                return;
        }
        snprintf(d->mount_device, sizeof d->mount_device, "/dev/mapper/" DATAFS_MAPPER_NAME);
        d->state = "mounted";
}
