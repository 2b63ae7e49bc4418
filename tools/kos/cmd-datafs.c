/* SPDX-License-Identifier: MIT */
/* kos datafs: the DataFS encrypted with LUKS2 (docs/system-kernel.md,
 * "The DataFS"): its factory reset on a device, and erasing the header of
 * a partition or image. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datafs-erase.h"
#include "kos.h"
#include "layout.h"

static int usage(void) {
        printf("Usage: kos datafs erase [--any-label] DEVICE|IMAGE\n"
               "       kos datafs factory-reset DEVICE\n\n"
               "erase          overwrites the LUKS2 headers and key slot area (up to the first data\n"
               "               segment) with zeros, so that nothing can open the data again and the\n"
               "               next boot formats the partition anew; refuses anything but LUKS2\n"
               "               labelled %s (--any-label: any LUKS2)\n"
               "factory-reset  what Node Manager's FactoryReset does, on the device: raises the\n"
               "               DataFS generation in the TPM ($KOS_TPM), then erases DEVICE\n",
               KOS_LABEL_DATA);
        return EXIT_OK;
}

static int cmd_erase(int argc, char **argv) {
        const char *label = KOS_LABEL_DATA, *path;
        char error[300] = "";
        uint64_t size, erased;
        struct stat st;

        if (argc == 3 && strcmp(argv[1], "--any-label") == 0) {
                label = NULL;
                argc--, argv++;
        }
        if (argc != 2)
                return usage_error("datafs", "erase takes one DEVICE or IMAGE");
        path = argv[1];
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0)
                return fail(EXIT_USAGE, "cannot open %s: %m", path);
        if (S_ISREG(st.st_mode))
                size = (uint64_t)st.st_size;
        else if (!S_ISBLK(st.st_mode) || lseek(fd, 0, SEEK_END) < 0)
                return fail(EXIT_USAGE, "%s is neither a block device nor a file", path);
        else
                size = (uint64_t)lseek(fd, 0, SEEK_END);
        int r = kos_datafs_erase(fd, size, label, &erased, error, sizeof error);
        if (r < 0)
                return fail(r == -EMEDIUMTYPE ? EXIT_INVALID : EXIT_USAGE, "%s: nothing erased: %s", path, error);
        printf("%s: LUKS2 headers and key slots erased (%llu bytes)\n", path, (unsigned long long)erased);
        return EXIT_OK;
}

static int cmd_factory_reset(int argc, char **argv) {
        struct kos_datafs_reset reset;

        if (argc != 2)
                return usage_error("datafs", "factory-reset takes one DEVICE");
        int r = kos_datafs_factory_reset(argv[1], &reset);
        if (reset.tpm_result >= 0)
                printf("DataFS generation raised to %llu\n", (unsigned long long)reset.generation);
        else
                fprintf(stderr, "kos: WARNING: %s\n", reset.tpm_error);
        if (reset.erase_result >= 0)
                printf("%s: LUKS2 headers and key slots erased (%llu bytes)\n", argv[1],
                       (unsigned long long)reset.erased_bytes);
        else
                fprintf(stderr, "kos: %s not erased: %s\n", argv[1], reset.erase_error);
        return r < 0 ? EXIT_INVALID : EXIT_OK;
}

int cmd_datafs(int argc, char **argv) {
        if (argc < 2 || wants_help(argc, argv))
                return argc < 2 ? (usage(), EXIT_USAGE) : usage();
        if (strcmp(argv[1], "erase") == 0)
                return cmd_erase(argc - 1, argv + 1);
        if (strcmp(argv[1], "factory-reset") == 0)
                return cmd_factory_reset(argc - 1, argv + 1);
        return usage_error("datafs", "unknown command '%s'", argv[1]);
}
