/* SPDX-License-Identifier: MIT */
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"
#include "verity.h"

int stack_attach_loop(int file_fd, char ret_path[static 32]) {
        _cleanup_close_ int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);

        if (control < 0)
                return -errno;
        /* Another process may take the free device between GET_FREE and
         * CONFIGURE (EBUSY): ask again a few times. */
        for (int attempt = 0; attempt < 16; attempt++) {
                int n = ioctl(control, LOOP_CTL_GET_FREE);
                if (n < 0)
                        return -errno;
                snprintf(ret_path, 32, "/dev/loop%d", n);
                int fd = open(ret_path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                struct loop_config config = {
                        .fd = (uint32_t)file_fd,
                        .info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                };
                if (ioctl(fd, LOOP_CONFIGURE, &config) == 0)
                        return fd;
                int r = -errno;
                close(fd);
                if (r != -EBUSY)
                        return r;
        }
        return -EBUSY;
}

static int describe(int r, const char *what, struct kos_error *ret_error) {
        return kos_error_set(ret_error, r, "%s: %s", what, strerror(r < 0 ? -r : r));
}

int stack_open_luks2(const char *device, const char *name, const uint8_t *key, size_t key_len,
                     struct kos_error *ret_error) {
        struct crypt_device *cd = NULL;
        int r = crypt_init(&cd, device);

        if (r < 0)
                return describe(r, "cannot open the device", ret_error);
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                describe(r, "not a LUKS2 container", ret_error);
        else {
                r = crypt_activate_by_passphrase(cd, name, CRYPT_ANY_SLOT, (const char *)key, key_len,
                                                 CRYPT_ACTIVATE_READONLY);
                if (r == -EPERM)
                        kos_error_set(ret_error, r, "the key does not open any key slot (wrong key)");
                else if (r < 0)
                        describe(r, "cannot activate dm-crypt", ret_error);
        }
        crypt_free(cd);
        return r < 0 ? r : 0;
}

int stack_open_verity(const char *device, const char *name, uint64_t hash_offset, const uint8_t root_hash[static 32],
                      bool restart_on_corruption, struct kos_error *ret_error) {
        uint8_t salt[KOS_VERITY_MAX_SALT];
        size_t salt_size;
        struct crypt_device *cd = NULL;
        int r;

        /* Read once, checked, and only our checked copy reaches the kernel:
         * libcryptsetup never parses the image's superblock (NO_HEADER). */
        _cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return describe(-errno, "cannot open the device", ret_error);
        r = kos_verity_read_superblock(fd, hash_offset, salt, &salt_size, ret_error);
        if (r < 0)
                return r;
        struct crypt_params_verity params = {
                .hash_name = "sha256",
                .data_device = device,
                .salt = (const char *)salt,
                .salt_size = (uint32_t)salt_size,
                .hash_type = 1,
                .data_block_size = KOS_VERITY_BLOCK,
                .hash_block_size = KOS_VERITY_BLOCK,
                .data_size = hash_offset / KOS_VERITY_BLOCK,
                /* Without a header, the offset is that of the tree itself:
                 * the block after the superblock. */
                .hash_area_offset = hash_offset + KOS_VERITY_BLOCK,
                .flags = CRYPT_VERITY_NO_HEADER,
        };
        r = crypt_init_data_device(&cd, device, device);
        if (r < 0)
                return describe(r, "cannot open the device", ret_error);
        r = crypt_format(cd, CRYPT_VERITY, NULL, NULL, NULL, NULL, 0, &params);
        if (r < 0)
                describe(r, "cannot set up dm-verity with the signed parameters", ret_error);
        else {
                /* The root hash comes only from the signed manifest: a tree
                 * that does not lead to it returns no block (EIO). */
                uint32_t flags = CRYPT_ACTIVATE_READONLY;
                if (restart_on_corruption)
                        flags |= CRYPT_ACTIVATE_RESTART_ON_CORRUPTION;
                r = crypt_activate_by_volume_key(cd, name, (const char *)root_hash, 32, flags);
                if (r < 0)
                        describe(r, "dm-verity refused the root hash", ret_error);
        }
        crypt_free(cd);
        return r < 0 ? r : 0;
}
