/* SPDX-License-Identifier: MIT */
/* The Boot Kernel's ESP slots (lib/device/bk-slots.h) on plain directories
 * standing in for efivarfs and the mounted ESP: the kernel's efivarfs and
 * vfat are not in this host's kernel, so the VM test runs them for real. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk-slots.h"
#include "test.h"

static const struct kos_esp_partition test_esp = {
        .number = 1, .start_lba = 2048, .size_lba = 69632,
        .guid = {0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b},
};

static int open_dir(const char *name) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
        if (mkdir(path, 0755) < 0)
                return -1;
        return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int set_u16(int efivars, const char *name, uint16_t v) {
        uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
        return kos_efivar_write(efivars, name, b, 2);
}

/* The ESP's partition type GUID, whose bytes on disk everyone knows. */
TEST(guid_parse_gives_the_mixed_endian_bytes_of_gpt) {
        uint8_t g[16];
        CHECK(kos_guid_parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", g) == 0);
        CHECK(memcmp(g, test_esp.guid, 16) == 0);
        CHECK(kos_guid_parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93", g) == -EINVAL);
        CHECK(kos_guid_parse("c12a7328+f81f-11d2-ba4b-00a0c93ec93b", g) == -EINVAL);
        CHECK(kos_guid_parse("g12a7328-f81f-11d2-ba4b-00a0c93ec93b", g) == -EINVAL);
}

/* UEFI 2.10, 3.1.3 and 10.3.5: attributes, path length, UCS-2 description,
 * HD(1,GPT,guid,2048,69632), File(\EFI\KOS\SLOT-B.EFI), End. */
TEST(slot_load_option_is_hd_then_file_path_then_end) {
        uint8_t b[512];
        int len = kos_bk_slot_load_option(1, &test_esp, b, sizeof b);
        static const char desc[] = "KOS Boot Kernel slot B", path[] = "\\EFI\\KOS\\SLOT-B.EFI";
        size_t d = 6 + 2 * sizeof desc, file_node = 4 + 2 * sizeof path;
        CHECK(len == (int)(d + 42 + file_node + 4));
        CHECK(b[0] == 1 && b[1] == 0 && b[2] == 0 && b[3] == 0);
        CHECK(b[4] + (b[5] << 8) == 42 + (int)file_node + 4);
        for (size_t i = 0; i < sizeof desc; i++)
                CHECK(b[6 + 2 * i] == (uint8_t)desc[i] && b[7 + 2 * i] == 0);
        const uint8_t *hd = b + d;
        CHECK(hd[0] == 4 && hd[1] == 1 && hd[2] == 42 && hd[3] == 0);
        /* Number 1 at 4, start 2048 at 8, size 69632 (0x11000) at 16, all little endian. */
        CHECK(hd[4] == 1 && hd[8] == 0x00 && hd[9] == 0x08 && hd[16] == 0x00 && hd[17] == 0x10 && hd[18] == 0x01);
        CHECK(memcmp(hd + 24, test_esp.guid, 16) == 0 && hd[40] == 2 && hd[41] == 2);
        const uint8_t *file = hd + 42;
        CHECK(file[0] == 4 && file[1] == 4 && file[2] + (file[3] << 8) == (int)file_node);
        for (size_t i = 0; i < sizeof path; i++)
                CHECK(file[4 + 2 * i] == (uint8_t)path[i] && file[5 + 2 * i] == 0);
        const uint8_t *end = file + file_node;
        CHECK(end[0] == 0x7f && end[1] == 0xff && end[2] == 4 && end[3] == 0);
        CHECK(kos_bk_slot_load_option(1, &test_esp, b, 100) == -ENOBUFS);
        CHECK(kos_bk_slot_load_option(2, &test_esp, b, sizeof b) == -EINVAL);
}

TEST(efivar_is_written_as_attributes_then_data_in_one_file) {
        int dir = open_dir("efivars");
        uint16_t order[8] = {0x4b0a, 0x0001}, back[8];
        size_t n = 0;
        uint8_t raw[16];
        CHECK(dir >= 0);
        CHECK(kos_efi_boot_order_write(dir, order, 2) == 0);
        int fd = openat(dir, "BootOrder-" KOS_EFI_GLOBAL_GUID, O_RDONLY | O_CLOEXEC);
        ssize_t len = fd >= 0 ? read(fd, raw, sizeof raw) : -1;
        if (fd >= 0)
                close(fd);
        CHECK(len == 8 && memcmp(raw, "\x07\x00\x00\x00\x0a\x4b\x01\x00", 8) == 0);
        CHECK(kos_efi_boot_order_read(dir, back, 8, &n) == 0 && n == 2 && back[0] == 0x4b0a && back[1] == 1);
        CHECK(kos_efi_boot_order_read(dir, back, 1, &n) == -EBADMSG);
        uint16_t v;
        CHECK(kos_efivar_read_u16(dir, "BootNext", &v) == -ENOENT);
        close(dir);
}

static int uki_file(const char *name, const char *text, uint8_t sha[static KOS_SHA256_LEN]) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || kos_sha256(text, strlen(text), sha) < 0)
                return -1;
        return fd;
}

TEST(slot_write_puts_exactly_the_signed_bytes_in_place_or_leaves_the_slot_as_it_was) {
        int esp = open_dir("esp");
        uint8_t sha[KOS_SHA256_LEN], wrong[KOS_SHA256_LEN];
        int src = uki_file("new.efi", "new UKI bytes", sha);
        char buf[64] = "";
        CHECK(esp >= 0 && src >= 0);
        CHECK(kos_bk_slot_write(esp, 1, src, 13, sha) == 0);
        int fd = openat(esp, "EFI/KOS/SLOT-B.EFI", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 13 && memcmp(buf, "new UKI bytes", 13) == 0);
        close(fd);
        memcpy(wrong, sha, sizeof wrong);
        wrong[0] ^= 1;
        CHECK(kos_bk_slot_write(esp, 1, src, 13, wrong) == -EBADMSG);
        CHECK(kos_bk_slot_write(esp, 1, src, 12, sha) == -EFBIG);
        CHECK(kos_bk_slot_write(esp, 1, src, 14, sha) == -EBADMSG);
        CHECK(faccessat(esp, "EFI/KOS/SLOT-B.TMP", F_OK, 0) < 0);
        fd = openat(esp, "EFI/KOS/SLOT-B.EFI", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 13 && memcmp(buf, "new UKI bytes", 13) == 0);
        close(fd);
        close(src);
        close(esp);
}

/* good: BootOrder's first; trial: BootNext's; bad: tried (SLOT-X.TRIED
 * names its bytes) and the device came back on the other slot. */
TEST(slot_states_come_from_boot_order_boot_next_and_the_tried_marker) {
        int esp = open_dir("esp"), efivars = open_dir("efivars");
        uint8_t sha_a[KOS_SHA256_LEN], sha_b[KOS_SHA256_LEN];
        int a = uki_file("a.efi", "UKI A", sha_a), b = uki_file("b.efi", "UKI B", sha_b);
        struct kos_bk_slots s;
        CHECK(esp >= 0 && efivars >= 0 && a >= 0 && b >= 0);
        CHECK(kos_bk_slots_load(esp, efivars, &s) == 0 && s.booted == -1 && s.good == -1 &&
              s.slot[0].state == KOS_BK_SLOT_EMPTY);
        CHECK(kos_bk_slot_write(esp, 0, a, 5, sha_a) == 0 && kos_bk_slot_write(esp, 1, b, 5, sha_b) == 0);
        uint16_t order[2] = {0x0001, 0x0002};
        CHECK(kos_efi_boot_order_write(efivars, order, 2) == 0);
        CHECK(kos_bk_slots_load(esp, efivars, &s) == 0);
        CHECK(s.slot[0].state == KOS_BK_SLOT_IDLE && s.slot[1].state == KOS_BK_SLOT_IDLE);
        /* First boot from the removable path: slot A becomes the default. */
        CHECK(kos_bk_slot_make_default(esp, efivars, 0, &test_esp, &s) == 0);
        uint16_t back[8];
        size_t n;
        CHECK(kos_efi_boot_order_read(efivars, back, 8, &n) == 0 && n == 3 && back[0] == 0x4b0a && back[1] == 1 && back[2] == 2);
        CHECK(set_u16(efivars, "BootCurrent", 0x4b0a) == 0);
        CHECK(kos_bk_slot_start_trial(esp, efivars, 1, &test_esp, sha_b) == 0);
        CHECK(kos_bk_slots_load(esp, efivars, &s) == 0);
        CHECK(s.booted == 0 && s.good == 0 && s.next == 1 && s.entries[0] && s.entries[1]);
        CHECK(s.slot[0].state == KOS_BK_SLOT_GOOD && s.slot[1].state == KOS_BK_SLOT_TRIAL);
        /* The firmware deleted BootNext and the trial never came back. */
        CHECK(kos_efivar_delete(efivars, "BootNext") == 0);
        CHECK(kos_bk_slots_load(esp, efivars, &s) == 0 && s.slot[1].state == KOS_BK_SLOT_BAD);
        /* Or it came back and is blessed: first in BootOrder, A second. */
        CHECK(set_u16(efivars, "BootCurrent", 0x4b0b) == 0);
        CHECK(kos_bk_slots_load(esp, efivars, &s) == 0 && s.booted == 1 && s.slot[1].state != KOS_BK_SLOT_BAD);
        CHECK(kos_bk_slot_make_default(esp, efivars, 1, &test_esp, &s) == 0);
        CHECK(kos_efi_boot_order_read(efivars, back, 8, &n) == 0 && n == 4 && back[0] == 0x4b0b && back[1] == 0x4b0a &&
              back[2] == 1 && back[3] == 2);
        CHECK(kos_bk_slots_load(esp, efivars, &s) == 0 && s.slot[1].state == KOS_BK_SLOT_GOOD);
        close(a), close(b), close(esp), close(efivars);
}

/* At blessing the removable path gets the blessed UKI, so a firmware that
 * lost its variables starts one at or above the floor. */
TEST(removable_path_gets_the_blessed_slots_uki) {
        int esp = open_dir("esp");
        uint8_t sha[KOS_SHA256_LEN];
        int src = uki_file("b.efi", "UKI B", sha);
        char buf[16] = "";
        CHECK(esp >= 0 && src >= 0);
        CHECK(kos_bk_removable_path_write(esp, 1) == -ENOENT);
        CHECK(kos_bk_slot_write(esp, 1, src, 5, sha) == 0);
        CHECK(kos_bk_removable_path_write(esp, 1) == 0);
        int fd = openat(esp, "EFI/BOOT/BOOTX64.EFI", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 5 && memcmp(buf, "UKI B", 5) == 0);
        close(fd);
        CHECK(faccessat(esp, "EFI/BOOT/BOOTX64.TMP", F_OK, 0) < 0);
        close(src);
        close(esp);
}
