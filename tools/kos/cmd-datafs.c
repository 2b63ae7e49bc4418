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

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>

#include "datafs-erase.h"
#include "datafs-recovery.h"
#include "kos.h"
#include "layout.h"

static int usage(void) {
        printf("Usage: kos datafs erase [--any-label] DEVICE|IMAGE\n"
               "       kos datafs factory-reset DEVICE\n"
               "       kos datafs recover --key KEY.pem [--cert CERT.pem] DEVICE|IMAGE|TOKEN.json\n\n"
               "erase          overwrites the LUKS2 headers and key slot area (up to the first data\n"
               "               segment) with zeros, so that nothing can open the data again and the\n"
               "               next boot formats the partition anew; refuses anything but LUKS2\n"
               "               labelled %s (--any-label: any LUKS2)\n"
               "factory-reset  what Node Manager's FactoryReset does, on the device: raises the\n"
               "               DataFS generation in the TPM ($KOS_TPM), then erases DEVICE\n"
               "recover        the vendor's side of the recovery key slot: decrypts the kos-recovery\n"
               "               token of a DataFS's LUKS2 header (or a token from `cryptsetup token\n"
               "               export`) with the recovery certificate's private key and prints the\n"
               "               passphrase (64 hex digits) and the key slot it opens\n",
               KOS_LABEL_DATA);
        return EXIT_OK;
}

static int cmd_erase(int argc, char **argv) {
        const char *label = KOS_LABEL_DATA, *path;
        struct kos_error error = KOS_ERROR_NULL;
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
        int r = kos_datafs_erase(fd, size, label, &erased, &error);
        if (r < 0)
                return fail(r == -EMEDIUMTYPE ? EXIT_INVALID : EXIT_USAGE, "%s: nothing erased: %s", path, error.msg);
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
        if (reset.marker_error[0])
                fprintf(stderr, "kos: WARNING: %s\n", reset.marker_error);
        if (reset.erase_result >= 0)
                printf("%s: LUKS2 headers and key slots erased (%llu bytes)\n", argv[1],
                       (unsigned long long)reset.erased_bytes);
        else
                fprintf(stderr, "kos: %s not erased: %s\n", argv[1], reset.erase_error);
        return r < 0 ? EXIT_INVALID : EXIT_OK;
}

/* The kos-recovery token of a LUKS2 header (or the file itself, when it
 * is a token's JSON): malloc'd. */
static char *find_recovery_token(const char *path, struct kos_error *ret_error) {
        _cleanup_free_ char *json = NULL;
        size_t len;
        uint64_t hdr_size;
        const char *key;
        json_t *token;
        char *found = NULL;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                kos_error_set(ret_error, -errno, "cannot open %s: %m", path);
                return NULL;
        }
        char first = 0;
        if (pread(fd, &first, 1, 0) == 1 && first == '{') {
                int r = kos_read_file_at(AT_FDCWD, path, 65536, &found, &len);
                if (r < 0)
                        kos_error_set(ret_error, r, "cannot read %s", path);
                return found;
        }
        if (kos_luks2_read_json(fd, NULL, &json, &hdr_size, ret_error) < 0)
                return NULL;
        json_t *o = json_loads(json, 0, NULL);
        json_object_foreach(json_object_get(o, "tokens"), key, token)
                if (!found && strcmp(json_string_value(json_object_get(token, "type")) ?: "", KOS_DATAFS_RECOVERY_TOKEN) == 0)
                        found = json_dumps(token, JSON_COMPACT);
        json_decref(o);
        if (!found)
                kos_error_set(ret_error, -ENOENT, "its LUKS2 header has no " KOS_DATAFS_RECOVERY_TOKEN " token");
        return found;
}

static int cmd_recover(int argc, char **argv) {
        static const struct option options[] = {
                {"key", required_argument, NULL, 'k'}, {"cert", required_argument, NULL, 'c'}, {}};
        const char *key = NULL, *cert = NULL;
        char pass[KOS_DATAFS_RECOVERY_PASS_MAX];
        struct kos_error error = KOS_ERROR_NULL;
        int c, keyslot;

        optind = 1;
        while ((c = getopt_long(argc, argv, "k:c:", options, NULL)) >= 0) {
                if (c == 'k')
                        key = optarg;
                else if (c == 'c')
                        cert = optarg;
                else
                        return usage_error("datafs", "unknown option");
        }
        if (!key || optind != argc - 1)
                return usage_error("datafs", "recover takes --key KEY.pem and one DEVICE, IMAGE or TOKEN.json");
        _cleanup_free_ char *token = find_recovery_token(argv[optind], &error);
        if (!token)
                return fail(EXIT_INVALID, "%s: %s", argv[optind], error.msg);
        if (kos_datafs_recovery_open(token, key, cert, pass, &keyslot, &error) < 0)
                return fail(EXIT_INVALID, "%s: %s", argv[optind], error.msg);
        printf("%s\n", pass);
        fprintf(stderr, "kos: the recovery passphrase of %s opens its key slot %d\n", argv[optind], keyslot);
        explicit_bzero(pass, sizeof pass);
        return EXIT_OK;
}

int cmd_datafs(int argc, char **argv) {
        if (argc < 2 || wants_help(argc, argv))
                return argc < 2 ? (usage(), EXIT_USAGE) : usage();
        if (strcmp(argv[1], "erase") == 0)
                return cmd_erase(argc - 1, argv + 1);
        if (strcmp(argv[1], "factory-reset") == 0)
                return cmd_factory_reset(argc - 1, argv + 1);
        if (strcmp(argv[1], "recover") == 0)
                return cmd_recover(argc - 1, argv + 1);
        return usage_error("datafs", "unknown command '%s'", argv[1]);
}
