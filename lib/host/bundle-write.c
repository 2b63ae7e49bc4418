/* SPDX-License-Identifier: MIT */
#include "bundle-write.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpio.h"
#include "util.h"

static int write_header(int fd, const char *name, uint32_t mode, uint64_t size, uint32_t ino) {
        char h[KOS_CPIO_HEADER_LEN + KOS_CPIO_NAME_MAX + 8];
        size_t name_size = strlen(name) + 1;

        if (size > UINT32_MAX || name_size > KOS_CPIO_NAME_MAX)
                return -EFBIG;
        int n = snprintf(h, sizeof h, KOS_CPIO_MAGIC "%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0u, 0u, 1u,
                         0u, (uint32_t)size, 0u, 0u, 0u, 0u, (uint32_t)name_size, 0u);
        memcpy(h + n, name, name_size);
        size_t len = (size_t)n + name_size;
        while (len % 4)
                h[len++] = '\0';
        return kos_write_all(fd, h, len);
}

static int write_padding(int fd, uint64_t size) {
        static const char zeros[4];
        return kos_write_all(fd, zeros, (4 - size % 4) % 4);
}

static int write_data_entry(int fd, const char *name, const void *data, size_t len, uint32_t ino) {
        int r = write_header(fd, name, 0100644, len, ino);
        if (r >= 0)
                r = kos_write_all(fd, data, len);
        return r < 0 ? r : write_padding(fd, len);
}

static int copy_fd(int out, int in, uint64_t size) {
        uint8_t buf[65536];

        for (uint64_t off = 0; off < size;) {
                size_t want = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
                ssize_t n = pread(in, buf, want, (off_t)off);
                if (n <= 0)
                        return n < 0 ? -errno : -EAGAIN;
                int r = kos_write_all(out, buf, (size_t)n);
                if (r < 0)
                        return r;
                off += (uint64_t)n;
        }
        return 0;
}

int kos_bundle_write(int out_fd, const char *manifest, size_t manifest_len, const char *sig, size_t sig_len,
                     const int *component_fds, const uint8_t (*component_sha256)[KOS_SHA256_LEN],
                     const uint64_t *component_sizes, size_t n_components) {
        char name[16 + KOS_SHA256_HEX_LEN];
        int r;

        if ((r = write_data_entry(out_fd, "manifest.json", manifest, manifest_len, 1)) < 0 ||
            (r = write_data_entry(out_fd, "manifest.json.sig", sig, sig_len, 2)) < 0)
                return r;
        for (size_t i = 0; i < n_components; i++) {
                memcpy(name, "components/", 11);
                kos_hex_encode(component_sha256[i], KOS_SHA256_LEN, name + 11);
                if ((r = write_header(out_fd, name, 0100644, component_sizes[i], (uint32_t)i + 3)) < 0 ||
                    (r = copy_fd(out_fd, component_fds[i], component_sizes[i])) < 0 ||
                    (r = write_padding(out_fd, component_sizes[i])) < 0)
                        return r;
        }
        return write_header(out_fd, "TRAILER!!!", 0, 0, 0);
}
