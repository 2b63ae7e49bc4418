/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the LUKS2 header reader of the factory reset
 * (lib/device/datafs-erase.c), which decides how many bytes of a partition
 * are zeroed: whatever it accepts lies within the device. The input is the
 * device (a memfd). */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "datafs-erase.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t length;
        int fd = memfd_create("luks2", MFD_CLOEXEC);

        if (fd < 0)
                return 0;
        if (write(fd, data, size) == (ssize_t)size &&
            kos_datafs_erase_extent(fd, size, NULL, &length, NULL) == 0 &&
            (length > size || length < 2 * KOS_LUKS2_HDR_MIN))
                abort();
        close(fd);
        return 0;
}
