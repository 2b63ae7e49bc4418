/* SPDX-License-Identifier: MIT */
#include "bk-slots.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uki.h"

static const char *const slot_files[KOS_BK_SLOTS] = {"SLOT-A.EFI", "SLOT-B.EFI"};
static const char *const slot_tmp_files[KOS_BK_SLOTS] = {"SLOT-A.TMP", "SLOT-B.TMP"};
static const char *const slot_tried_files[KOS_BK_SLOTS] = {"SLOT-A.TRIED", "SLOT-B.TRIED"};
/* The firmware's path of each file: the ESP's root is "\". */
static const char *const slot_efi_paths[KOS_BK_SLOTS] = {"\\EFI\\KOS\\SLOT-A.EFI", "\\EFI\\KOS\\SLOT-B.EFI"};
#define SLOT_DIR "EFI/KOS"

const char *kos_bk_slot_file(unsigned slot) { return slot < KOS_BK_SLOTS ? slot_files[slot] : NULL; }
char kos_bk_slot_letter(unsigned slot) { return slot < KOS_BK_SLOTS ? (char)('A' + slot) : '?'; }

static const char *const state_names[_KOS_BK_SLOT_STATE_MAX] = {
        [KOS_BK_SLOT_EMPTY] = "empty", [KOS_BK_SLOT_GOOD] = "good", [KOS_BK_SLOT_TRIAL] = "trial",
        [KOS_BK_SLOT_BAD] = "bad",     [KOS_BK_SLOT_IDLE] = "idle",
};

const char *kos_bk_slot_state_to_string(enum kos_bk_slot_state s) {
        return s < _KOS_BK_SLOT_STATE_MAX ? state_names[s] : NULL;
}

/* --- EFI_LOAD_OPTION ------------------------------------------------------ */

struct writer {
        uint8_t *buf;
        size_t size, len;
        bool overflow;
};

static void put(struct writer *w, const void *data, size_t len) {
        if (w->overflow || len > w->size - w->len) {
                w->overflow = true;
                return;
        }
        memcpy(w->buf + w->len, data, len);
        w->len += len;
}

static void put_le(struct writer *w, uint64_t v, size_t bytes) {
        uint8_t b[8];
        for (size_t i = 0; i < bytes; i++)
                b[i] = (uint8_t)(v >> (8 * i));
        put(w, b, bytes);
}

/* ASCII as UCS-2 with a final NUL. */
static void put_ucs2(struct writer *w, const char *s) {
        for (; *s; s++)
                put_le(w, (uint8_t)*s, 2);
        put_le(w, 0, 2);
}

int kos_bk_slot_load_option(unsigned slot, const struct kos_esp_partition *esp, uint8_t *buf, size_t size) {
        char description[64];
        struct writer w = {buf, size, 0, false};

        if (slot >= KOS_BK_SLOTS)
                return -EINVAL;
        snprintf(description, sizeof description, KOS_BK_SLOT_DESCRIPTION_PREFIX "%c", kos_bk_slot_letter(slot));
        const char *path = slot_efi_paths[slot];
        size_t file_node = 4 + 2 * (strlen(path) + 1);
        size_t path_len = 42 + file_node + 4;
        put_le(&w, KOS_EFI_LOAD_OPTION_ACTIVE, 4);
        put_le(&w, path_len, 2);
        put_ucs2(&w, description);
        /* HD(): media (4), hard drive (1), 42 bytes. */
        put_le(&w, 0x04, 1), put_le(&w, 0x01, 1), put_le(&w, 42, 2);
        put_le(&w, esp->number, 4), put_le(&w, esp->start_lba, 8), put_le(&w, esp->size_lba, 8);
        put(&w, esp->guid, 16);
        put_le(&w, 0x02, 1); /* partition format: GPT */
        put_le(&w, 0x02, 1); /* signature type: GUID */
        /* File(): media (4), file path (4). */
        put_le(&w, 0x04, 1), put_le(&w, 0x04, 1), put_le(&w, file_node, 2);
        put_ucs2(&w, path);
        /* End of the whole device path. */
        put_le(&w, 0x7f, 1), put_le(&w, 0xff, 1), put_le(&w, 4, 2);
        return w.overflow ? -ENOBUFS : (int)w.len;
}

int kos_guid_parse(const char *text, uint8_t ret[static 16]) {
        /* Byte i of the text's order lands at order[i] on disk. */
        static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
        char hex[33];
        uint8_t bytes[16];
        size_t k = 0;

        if (strlen(text) != 36)
                return -EINVAL;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash != (text[i] == '-'))
                        return -EINVAL;
                if (!dash)
                        hex[k++] = (char)(text[i] >= 'A' && text[i] <= 'F' ? text[i] - 'A' + 'a' : text[i]);
        }
        if (kos_hex_decode(hex, 32, bytes, 16) < 0)
                return -EINVAL;
        for (size_t i = 0; i < 16; i++)
                ret[order[i]] = bytes[i];
        return 0;
}

/* --- efivarfs ------------------------------------------------------------- */

static int efivar_path(const char *name, char ret[static 128]) {
        return (size_t)snprintf(ret, 128, "%s-%s", name, KOS_EFI_GLOBAL_GUID) < 128 ? 0 : -ENAMETOOLONG;
}

int kos_efivar_read(int efivars_fd, const char *name, uint8_t *data, size_t cap, size_t *ret_len) {
        uint8_t buf[4 + KOS_EFI_VARIABLE_MAX];
        char path[128];
        int r;

        if ((r = efivar_path(name, path)) < 0)
                return r;
        _cleanup_close_ int fd = openat(efivars_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        /* efivarfs hands the whole variable to one read(). */
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0)
                return -errno;
        if (n < 4 || (size_t)n - 4 > cap)
                return -EBADMSG;
        memcpy(data, buf + 4, (size_t)n - 4);
        *ret_len = (size_t)n - 4;
        return 0;
}

int kos_efivar_write_file(int efivars_fd, const char *file, uint32_t attributes, const void *data, size_t len) {
        _cleanup_free_ uint8_t *buf = malloc(4 + len);

        if (!buf)
                return -ENOMEM;
        memcpy(buf, &attributes, 4);
        memcpy(buf + 4, data, len);
        /* No O_TRUNC: efivarfs hands what one write() gives (attributes,
         * then data) to SetVariable(); a truncate alone would delete it. */
        _cleanup_close_ int fd = openat(efivars_fd, file, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, buf, 4 + len);
        if (n < 0)
                return -errno;
        return (size_t)n == 4 + len ? 0 : -EIO;
}

int kos_efivar_write(int efivars_fd, const char *name, const void *data, size_t len) {
        char path[128];
        int r;

        if (len > KOS_EFI_VARIABLE_MAX)
                return -E2BIG;
        if ((r = efivar_path(name, path)) < 0)
                return r;
        return kos_efivar_write_file(efivars_fd, path, KOS_EFI_VARIABLE_ATTRIBUTES, data, len);
}

int kos_efivar_delete(int efivars_fd, const char *name) {
        char path[128];
        int r = efivar_path(name, path);

        if (r < 0)
                return r;
        return unlinkat(efivars_fd, path, 0) < 0 && errno != ENOENT ? -errno : 0;
}

int kos_efivar_read_u16(int efivars_fd, const char *name, uint16_t *ret) {
        uint8_t b[2];
        size_t len;
        int r = kos_efivar_read(efivars_fd, name, b, sizeof b, &len);

        if (r < 0)
                return r;
        if (len != 2)
                return -EBADMSG;
        *ret = (uint16_t)(b[0] | b[1] << 8);
        return 0;
}

int kos_efi_boot_order_read(int efivars_fd, uint16_t *ret, size_t cap, size_t *ret_n) {
        uint8_t b[2 * KOS_EFI_BOOT_ORDER_MAX];
        size_t len;
        int r = kos_efivar_read(efivars_fd, "BootOrder", b, sizeof b, &len);

        *ret_n = 0;
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (len % 2 != 0 || len / 2 > cap)
                return -EBADMSG;
        for (size_t i = 0; i < len / 2; i++)
                ret[i] = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
        *ret_n = len / 2;
        return 0;
}

int kos_efi_boot_order_write(int efivars_fd, const uint16_t *order, size_t n) {
        uint8_t b[2 * KOS_EFI_BOOT_ORDER_MAX];

        if (n > KOS_EFI_BOOT_ORDER_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++)
                b[2 * i] = (uint8_t)order[i], b[2 * i + 1] = (uint8_t)(order[i] >> 8);
        return kos_efivar_write(efivars_fd, "BootOrder", b, 2 * n);
}

static void boot_name(uint16_t number, char ret[static 9]) { snprintf(ret, 9, "Boot%04X", number); }

static int slot_of_boot_number(uint16_t number) {
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++)
                if (number == KOS_BK_SLOT_BOOT_NUMBER(i))
                        return (int)i;
        return -1;
}

/* --- The slots' files ---------------------------------------------------- */

static int open_slot_dir(int esp_fd, bool create) {
        if (create) {
                if (mkdirat(esp_fd, "EFI", 0755) < 0 && errno != EEXIST)
                        return -errno;
                if (mkdirat(esp_fd, SLOT_DIR, 0755) < 0 && errno != EEXIST)
                        return -errno;
        }
        int fd = openat(esp_fd, SLOT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

/* Copies from src to dst while hashing; the size must be exactly size. */
static int copy_hashed(int src, int dst, uint64_t size, uint8_t ret[static KOS_SHA256_LEN]) {
        _cleanup_free_ uint8_t *buf = malloc(1 << 20);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint64_t done = 0;
        int r = 0;

        if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                return -ENOMEM;
        }
        while (r == 0) {
                ssize_t n = pread(src, buf, 1 << 20, (off_t)done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (n == 0)
                        break;
                else if ((uint64_t)n > size - done)
                        r = -EFBIG;
                else if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
                        r = -EIO;
                else if (dst >= 0 && (r = kos_write_all(dst, buf, (size_t)n)) == 0)
                        done += (uint64_t)n;
                else if (dst < 0)
                        done += (uint64_t)n;
        }
        if (r == 0 && done != size)
                r = -EBADMSG;
        if (r == 0 && EVP_DigestFinal_ex(ctx, ret, NULL) != 1)
                r = -EIO;
        EVP_MD_CTX_free(ctx);
        return r;
}

/* dir/tmp written from src while hashed, checked, fsynced, renamed over
 * dir/name, dir fsynced: name holds the old or the new bytes, never others. */
static int write_verified(int dir, const char *tmp, const char *name, int src_fd, uint64_t size,
                          const uint8_t sha256[static KOS_SHA256_LEN]) {
        uint8_t digest[KOS_SHA256_LEN];
        int r;

        _cleanup_close_ int fd = kos_create_file_at(dir, tmp, 0644);
        if (fd < 0)
                return fd;
        r = copy_hashed(src_fd, fd, size, digest);
        kos_fault_point(); /* the temporary file half written */
        if (r == 0 && !kos_digest_equal(digest, sha256))
                r = -EBADMSG;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        kos_fault_point(); /* written, not yet renamed */
        if (r == 0 && renameat(dir, tmp, dir, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dir, tmp, 0); /* name is as it was */
                return r;
        }
        kos_fault_point(); /* renamed, the directory not yet synced */
        /* vfat's rename gives the new name a fresh entry with no first cluster
         * and size 0, which only the file's own write-back fills in
         * (fs/fat/namei_vfat.c, vfat_rename(): vfat_add_entry(), then
         * mark_inode_dirty()): syncing the directory alone left an empty
         * SLOT-B.EFI after a power cut (the VM test). So the file is synced
         * again at its new place, then the directory. */
        if (fsync(fd) < 0)
                return -errno;
        return fsync(dir) < 0 ? -errno : 0;
}

int kos_bk_slot_write(int esp_fd, unsigned slot, int src_fd, uint64_t size, const uint8_t sha256[static KOS_SHA256_LEN]) {
        if (slot >= KOS_BK_SLOTS || size == 0 || size > KOS_BK_UKI_MAX)
                return -EINVAL;
        _cleanup_close_ int dir = open_slot_dir(esp_fd, true);
        if (dir < 0)
                return dir;
        return write_verified(dir, slot_tmp_files[slot], slot_files[slot], src_fd, size, sha256);
}

int kos_bk_removable_path_write(int esp_fd, unsigned slot) {
        struct stat st;
        uint8_t sha256[KOS_SHA256_LEN];
        int r;

        if (slot >= KOS_BK_SLOTS)
                return -EINVAL;
        _cleanup_close_ int slots = open_slot_dir(esp_fd, false);
        if (slots < 0)
                return slots;
        _cleanup_close_ int src = kos_open_regular_at(slots, slot_files[slot], O_NOFOLLOW, &st);
        if (src < 0)
                return src;
        if ((uint64_t)st.st_size > KOS_BK_UKI_MAX)
                return -EFBIG;
        if ((r = copy_hashed(src, -1, (uint64_t)st.st_size, sha256)) < 0)
                return r;
        if (mkdirat(esp_fd, "EFI/BOOT", 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int dir = openat(esp_fd, "EFI/BOOT", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dir < 0)
                return -errno;
        return write_verified(dir, "BOOTX64.TMP", "BOOTX64.EFI", src, (uint64_t)st.st_size, sha256);
}

static int read_tried(int dir, unsigned slot, uint8_t ret[static KOS_SHA256_LEN]) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = kos_read_file_at(dir, slot_tried_files[slot], 256, &text, &len);

        if (r < 0)
                return r;
        if (len < KOS_SHA256_HEX_LEN || kos_hex_decode(text, KOS_SHA256_HEX_LEN, ret, KOS_SHA256_LEN) < 0)
                return -EBADMSG;
        return 0;
}

static int load_slot(int dir, unsigned slot, struct kos_bk_slot *ret) {
        struct stat st;
        uint8_t tried[KOS_SHA256_LEN];

        *ret = (struct kos_bk_slot){.state = KOS_BK_SLOT_EMPTY};
        if (dir < 0)
                return 0;
        _cleanup_close_ int fd = kos_open_regular_at(dir, slot_files[slot], O_NOFOLLOW, &st);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        if ((uint64_t)st.st_size > KOS_BK_UKI_MAX)
                return -EFBIG;
        int r = copy_hashed(fd, -1, (uint64_t)st.st_size, ret->sha256);
        if (r < 0)
                return r;
        ret->present = true;
        ret->size = (uint64_t)st.st_size;
        ret->has_security_version = kos_uki_security_version(fd, &ret->security_version) >= 0;
        ret->tried = read_tried(dir, slot, tried) >= 0 && kos_digest_equal(tried, ret->sha256);
        ret->state = KOS_BK_SLOT_IDLE;
        return 0;
}

static int slot_of_variable(int efivars_fd, const char *name) {
        uint16_t v;
        return efivars_fd >= 0 && kos_efivar_read_u16(efivars_fd, name, &v) >= 0 ? slot_of_boot_number(v) : -1;
}

int kos_bk_slots_load(int esp_fd, int efivars_fd, struct kos_bk_slots *ret) {
        uint16_t order[KOS_EFI_BOOT_ORDER_MAX];
        size_t n_order = 0;
        int r;

        *ret = (struct kos_bk_slots){.booted = -1, .good = -1, .next = -1};
        _cleanup_close_ int dir = open_slot_dir(esp_fd, false);
        if (dir < 0 && dir != -ENOENT)
                return dir;
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++)
                if ((r = load_slot(dir, i, &ret->slot[i])) < 0)
                        return r;
        if (efivars_fd < 0)
                return 0;
        ret->booted = slot_of_variable(efivars_fd, "BootCurrent");
        ret->next = slot_of_variable(efivars_fd, "BootNext");
        if (kos_efi_boot_order_read(efivars_fd, order, ELEMENTSOF(order), &n_order) >= 0 && n_order > 0)
                ret->good = slot_of_boot_number(order[0]);
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++) {
                char name[9];
                uint8_t data[KOS_EFI_VARIABLE_MAX];
                size_t len;
                boot_name(KOS_BK_SLOT_BOOT_NUMBER(i), name);
                ret->entries[i] = kos_efivar_read(efivars_fd, name, data, sizeof data, &len) >= 0;
        }
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++) {
                struct kos_bk_slot *s = &ret->slot[i];
                if (!s->present)
                        continue;
                if ((int)i == ret->good)
                        s->state = KOS_BK_SLOT_GOOD;
                else if ((int)i == ret->next)
                        s->state = KOS_BK_SLOT_TRIAL;
                else if (s->tried && (int)i != ret->booted)
                        s->state = KOS_BK_SLOT_BAD;
        }
        return 0;
}

static int write_entry(int efivars_fd, unsigned slot, const struct kos_esp_partition *esp) {
        uint8_t option[512];
        char name[9];
        int len = kos_bk_slot_load_option(slot, esp, option, sizeof option);

        if (len < 0)
                return len;
        boot_name(KOS_BK_SLOT_BOOT_NUMBER(slot), name);
        return kos_efivar_write(efivars_fd, name, option, (size_t)len);
}

int kos_bk_slot_start_trial(int esp_fd, int efivars_fd, unsigned slot, const struct kos_esp_partition *esp,
                            const uint8_t sha256[static KOS_SHA256_LEN]) {
        char hex[KOS_SHA256_HEX_LEN + 2];
        uint8_t next[2] = {(uint8_t)KOS_BK_SLOT_BOOT_NUMBER(slot), (uint8_t)(KOS_BK_SLOT_BOOT_NUMBER(slot) >> 8)};
        int r;

        if (slot >= KOS_BK_SLOTS)
                return -EINVAL;
        _cleanup_close_ int dir = open_slot_dir(esp_fd, true);
        if (dir < 0)
                return dir;
        kos_hex_encode(sha256, KOS_SHA256_LEN, hex);
        strcat(hex, "\n");
        /* BootNext before SLOT-X.TRIED: a cut before BootNext leaves the slot
         * idle (no record), so the next boot starts the trial again, and a
         * cut between the two lets the trial run once unrecorded, as if it
         * were its first; never a slot reported bad that was never tried. */
        if ((r = write_entry(efivars_fd, slot, esp)) < 0)
                return r;
        kos_fault_point(); /* the entry is there, BootNext not yet */
        if ((r = kos_efivar_write(efivars_fd, "BootNext", next, sizeof next)) < 0)
                return r;
        kos_fault_point(); /* BootNext set, the trial not yet recorded */
        if ((r = kos_write_file_atomic_at(dir, slot_tried_files[slot], hex, strlen(hex), 0644)) < 0 &&
            kos_efivar_delete(efivars_fd, "BootNext") < 0) /* no trial that would go unrecorded */
                return r;
        return r;
}

/* The slot's boot was marked good: its trial passed, and its record goes
 * before BootOrder names it, so a cut in between leaves the slot idle
 * (tried again), not bad. */
static int clear_tried(int esp_fd, unsigned slot) {
        _cleanup_close_ int dir = open_slot_dir(esp_fd, false);

        if (dir == -ENOENT)
                return 0;
        if (dir < 0)
                return dir;
        if (unlinkat(dir, slot_tried_files[slot], 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync(dir) < 0 ? -errno : 0;
}

int kos_bk_slot_make_default(int esp_fd, int efivars_fd, unsigned slot, const struct kos_esp_partition *esp,
                             const struct kos_bk_slots *s) {
        uint16_t order[KOS_EFI_BOOT_ORDER_MAX], next[KOS_EFI_BOOT_ORDER_MAX];
        size_t n = 0, k = 0;
        int r;

        if (slot >= KOS_BK_SLOTS)
                return -EINVAL;
        if ((r = clear_tried(esp_fd, slot)) < 0 || (r = write_entry(efivars_fd, slot, esp)) < 0 ||
            (r = kos_efi_boot_order_read(efivars_fd, order, ELEMENTSOF(order), &n)) < 0)
                return r;
        next[k++] = KOS_BK_SLOT_BOOT_NUMBER(slot);
        unsigned other = 1 - slot;
        if (s->entries[other] && s->slot[other].present)
                next[k++] = KOS_BK_SLOT_BOOT_NUMBER(other);
        for (size_t i = 0; i < n && k < ELEMENTSOF(next); i++)
                if (slot_of_boot_number(order[i]) < 0)
                        next[k++] = order[i];
        kos_fault_point(); /* the entry is there, BootOrder not yet */
        return kos_efi_boot_order_write(efivars_fd, next, k);
}
