/* SPDX-License-Identifier: MIT */
/* kos bk-slots show | write | trial | bless: the Boot Kernel's ESP slots
 * (lib/device/bk-slots.h) on a mounted ESP, for a person servicing a device
 * or a disk image; Node Manager does the same on its own. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk-slots.h"
#include "kos.h"

static int open_dir_or_fail(const char *path, int *ret) {
        *ret = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return *ret < 0 ? fail(EXIT_USAGE, "cannot open %s: %m", path) : EXIT_OK;
}

static int slots_show(int esp_fd, int efivars_fd) {
        struct kos_bk_slots s;
        int r = kos_bk_slots_load(esp_fd, efivars_fd, &s);

        if (r < 0)
                return fail(EXIT_USAGE, "cannot read the slots: %s", strerror(-r));
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++) {
                char hex[KOS_SHA256_HEX_LEN + 1] = "-", version[16] = "-";
                if (s.slot[i].present)
                        kos_hex_encode(s.slot[i].sha256, KOS_SHA256_LEN, hex);
                if (s.slot[i].has_security_version)
                        snprintf(version, sizeof version, "%u", s.slot[i].security_version);
                printf("%c %-5s %s %s%s\n", kos_bk_slot_letter(i), kos_bk_slot_state_to_string(s.slot[i].state), version,
                       hex, (int)i == s.booted ? " booted" : "");
        }
        return EXIT_OK;
}

/* Writes UKI into SLOT, checked against its own sha256 as read first: a
 * file that changes meanwhile is refused, the slot left as it was. */
static int slots_write(int esp_fd, const char *letter, const char *uki) {
        struct kos_hash_job job = {.copy_fd = -1, .compute_only = true};
        struct stat st;
        int r;

        if (strlen(letter) != 1 || (letter[0] != 'A' && letter[0] != 'B'))
                return usage_error("bk-slots write", "SLOT is A or B");
        _cleanup_close_ int fd = kos_open_regular_at(AT_FDCWD, uki, 0, &st);
        if (fd < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", uki, file_error_string(fd));
        job.fd = fd;
        job.size = (uint64_t)st.st_size;
        if (kos_hash_jobs(&job, 1, NULL, NULL) < 0 || job.status != KOS_HASH_MATCH)
                return fail(EXIT_USAGE, "cannot hash %s", uki);
        if ((r = kos_bk_slot_write(esp_fd, (unsigned)(letter[0] - 'A'), fd, job.size, job.digest)) < 0)
                return fail(EXIT_USAGE, "cannot write slot %s: %s", letter, strerror(-r));
        return EXIT_OK;
}

/* N:START:SIZE:GUID, as Node Manager reads them from sysfs and libblkid. */
static int parse_partition(const char *text, struct kos_esp_partition *ret) {
        unsigned long long number, start, size;
        char guid[37];
        int end = 0;

        if (sscanf(text, "%llu:%llu:%llu:%36s%n", &number, &start, &size, guid, &end) != 4 || text[end] != '\0' ||
            number == 0 || number > UINT32_MAX || size == 0 || kos_guid_parse(guid, ret->guid) < 0)
                return -EINVAL;
        ret->number = (uint32_t)number;
        ret->start_lba = start;
        ret->size_lba = size;
        return 0;
}

/* trial SLOT: what Node Manager does once the UKI is in SLOT; bless SLOT:
 * what it does once that slot's boot was marked good (without the floor). */
static int slots_set(int esp_fd, int efivars_fd, const char *verb, const char *partition, const char *letter) {
        struct kos_esp_partition part;
        struct kos_bk_slots s;
        int r;

        if (efivars_fd < 0 || !partition || parse_partition(partition, &part) < 0)
                return usage_error("bk-slots", "%s needs --efivars DIR and --esp-partition N:START:SIZE:GUID", verb);
        if (strlen(letter) != 1 || (letter[0] != 'A' && letter[0] != 'B'))
                return usage_error("bk-slots", "SLOT is A or B");
        unsigned slot = (unsigned)(letter[0] - 'A');
        if ((r = kos_bk_slots_load(esp_fd, efivars_fd, &s)) < 0)
                return fail(EXIT_USAGE, "cannot read the slots: %s", strerror(-r));
        if (!s.slot[slot].present)
                return fail(EXIT_USAGE, "slot %s is empty", letter);
        if (strcmp(verb, "trial") == 0)
                r = kos_bk_slot_start_trial(esp_fd, efivars_fd, slot, &part, s.slot[slot].sha256);
        else
                r = kos_bk_slot_make_default(esp_fd, efivars_fd, slot, &part, &s);
        return r < 0 ? fail(EXIT_USAGE, "cannot %s slot %s: %s", verb, letter, strerror(-r)) : EXIT_OK;
}

int cmd_bk_slots(int argc, char **argv) {
        const char *esp = NULL, *efivars = NULL, *partition = NULL;

        if (wants_help(argc, argv) || argc < 2) {
                printf("Usage: kos bk-slots show --esp DIR [--efivars DIR]\n"
                       "       kos bk-slots write --esp DIR SLOT UKI\n"
                       "       kos bk-slots trial|bless --esp DIR --efivars DIR --esp-partition N:START:SIZE:GUID SLOT\n\n"
                       "The Boot Kernel's two ESP slots (\\EFI\\KOS\\SLOT-A.EFI, SLOT-B.EFI) in the ESP\n"
                       "mounted at DIR: show prints each slot's state (good, trial, bad, idle, empty;\n"
                       "with --efivars, an efivarfs mount, from BootOrder and BootNext), security\n"
                       "version and sha256; write puts UKI into SLOT (A or B) power-cut safely\n"
                       "(docs/trust-chain.md, \"Boot Kernel updates\") and sets no variable; trial\n"
                       "makes the next boot try SLOT once (its boot entry, then BootNext), bless puts\n"
                       "SLOT first in BootOrder (the Boot Kernel floor is not raised here). The ESP's\n"
                       "partition (number, start and size in logical blocks, GUID) goes into the\n"
                       "boot entry. Node Manager does all of this by itself.\n");
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        const char *verb = argv[1];
        int i = 2;
        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                if (strcmp(argv[i], "--esp") == 0)
                        esp = argv[i + 1];
                else if (strcmp(argv[i], "--efivars") == 0)
                        efivars = argv[i + 1];
                else if (strcmp(argv[i], "--esp-partition") == 0)
                        partition = argv[i + 1];
                else
                        return usage_error("bk-slots", "unknown option %s", argv[i]);
        }
        if (!esp)
                return usage_error("bk-slots", "--esp DIR is required");
        _cleanup_close_ int esp_fd = -1, efivars_fd = -1;
        int code;
        if ((code = open_dir_or_fail(esp, &esp_fd)) != EXIT_OK ||
            (efivars && (code = open_dir_or_fail(efivars, &efivars_fd)) != EXIT_OK))
                return code;
        if (strcmp(verb, "show") == 0 && i == argc)
                return slots_show(esp_fd, efivars_fd);
        if (strcmp(verb, "write") == 0 && argc - i == 2)
                return slots_write(esp_fd, argv[i], argv[i + 1]);
        if ((strcmp(verb, "trial") == 0 || strcmp(verb, "bless") == 0) && argc - i == 1)
                return slots_set(esp_fd, efivars_fd, verb, partition, argv[i]);
        return usage_error("bk-slots", "expected show, write SLOT UKI, trial SLOT or bless SLOT");
}
