/* SPDX-License-Identifier: MIT */
/* LUKS2 encryption in place with a data shift: see datafs-reencrypt.h. */
#include "datafs-reencrypt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int kos_datafs_reencrypt_run(struct crypt_device *cd, int keyslot, const char *pass,
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
         * datashift resilience), then the encryption goes on. */
        if (crypt_reencrypt_status(cd, NULL) == CRYPT_REENCRYPT_CRASH &&
            (r = crypt_reencrypt_init_by_passphrase(cd, NULL, pass, strlen(pass), CRYPT_ANY_SLOT, keyslot, NULL, NULL,
                                                    &recovery)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup does not recover the hotzone a cut interrupted: %s",
                                     strerror(-r));
        if ((r = crypt_reencrypt_init_by_passphrase(cd, NULL, pass, strlen(pass), CRYPT_ANY_SLOT, keyslot, NULL, NULL,
                                                    &params)) < 0)
                return kos_error_set(ret_error, r, "libcryptsetup does not load the encryption in progress: %s",
                                     strerror(-r));
        if ((r = crypt_reencrypt_run(cd, on_progress, &p)) < 0)
                return kos_error_set(ret_error, r, "the encryption stopped: %s", strerror(-r));
        return 0;
}
