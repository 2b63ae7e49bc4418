/* SPDX-License-Identifier: MIT */
/* "verify": "hash-tree": the manifest rule, the dm-verity tree walk on
 * images made by the real `veritysetup format`, selection with it, and the
 * unconfirmed marker that sends a boot that never got confirmed back to a
 * full sha256 check. */
#include <endian.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bootstate.h"
#include "imagefs.h"
#include "keyring.h"
#include "select.h"
#include "signature.h"
#include "test.h"
#include "verity.h"

#define H64 "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""

/* --- the manifest rule --- */

/* One component "base" with the given extra keys and size. */
static int parse_component(const char *fields, struct kos_manifest **ret) {
        char json[2048];
        struct kos_error err = KOS_ERROR_NULL;
        struct kos_manifest *m = NULL;

        snprintf(json, sizeof json,
                 "{\"format\": 1, \"name\": \"t\", \"version\": 1, \"kernel\": {\"sha256\": " H64 ", \"size\": 1}, "
                 "\"initrd\": {\"sha256\": " H64 ", \"size\": 1}, \"cmdline\": \"\", \"components\": "
                 "[{\"name\": \"base\", \"type\": \"erofs\", \"sha256\": " H64 ", %s}]}",
                 fields);
        int r = kos_manifest_parse(json, strlen(json), &m, &err);
        if (ret)
                *ret = m;
        else
                kos_manifest_free(m);
        return r;
}

/* hash_offset 8192: two data blocks, one tree block: 8192 + 4096 + 4096. */
#define VERITY_8192 "\"verity\": {\"root_hash\": " H64 ", \"hash_offset\": 8192}"

TEST(manifest_accepts_hash_tree_with_verity_and_no_encryption) {
        struct kos_manifest *m = NULL;
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": \"hash-tree\"", &m) == 0);
        bool ok = m->components[0].verify == KOS_VERIFY_HASH_TREE;
        kos_manifest_free(m);
        CHECK(ok);
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": \"sha256\"", &m) == 0);
        ok = m->components[0].verify == KOS_VERIFY_SHA256;
        kos_manifest_free(m);
        CHECK(ok);
        /* One data block: no tree at all, the root hash is its digest. */
        CHECK(parse_component("\"size\": 8192, \"verity\": {\"root_hash\": " H64 ", \"hash_offset\": 4096}, "
                              "\"verify\": \"hash-tree\"", NULL) == 0);
}

TEST(manifest_refuses_hash_tree_with_encryption_without_verity_or_unknown_value) {
        CHECK(parse_component("\"size\": 16384, \"encryption\": {\"type\": \"luks2\", \"key\": \"k\"}, " VERITY_8192
                              ", \"verify\": \"hash-tree\"", NULL) == -EBADMSG);
        CHECK(parse_component("\"size\": 16384, \"verify\": \"hash-tree\"", NULL) == -EBADMSG);
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": \"hashtree\"", NULL) == -EBADMSG);
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": \"\"", NULL) == -EBADMSG);
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": 1", NULL) == -EBADMSG);
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": null", NULL) == -EBADMSG);
        /* The sha256 default takes any size the verity rule allows. */
        CHECK(parse_component("\"size\": 20480, " VERITY_8192 ", \"verify\": \"sha256\"", NULL) == 0);
}

TEST(manifest_refuses_hash_tree_whose_size_is_not_data_superblock_and_tree) {
        struct kos_error error = KOS_ERROR_NULL;
        struct kos_manifest *m = NULL;
        /* A byte short (the tree cut), a block more (bytes nothing checks). */
        CHECK(parse_component("\"size\": 16383, " VERITY_8192 ", \"verify\": \"hash-tree\"", NULL) == -EBADMSG);
        CHECK(parse_component("\"size\": 20480, " VERITY_8192 ", \"verify\": \"hash-tree\"", NULL) == -EBADMSG);
        const char *json = "{\"format\": 1, \"name\": \"t\", \"version\": 1, \"kernel\": {\"sha256\": " H64
                           ", \"size\": 1}, \"initrd\": {\"sha256\": " H64 ", \"size\": 1}, \"cmdline\": \"\", "
                           "\"components\": [{\"name\": \"b\", \"type\": \"erofs\", \"sha256\": " H64
                           ", \"size\": 12288, " VERITY_8192 ", \"verify\": \"hash-tree\"}]}";
        CHECK(kos_manifest_parse(json, strlen(json), &m, &error) == -EBADMSG);
        CHECK(strstr(error.msg, "16384 bytes"));
}

TEST(verity_image_size_follows_the_kernels_tree_geometry) {
        uint64_t size, blocks;
        unsigned levels;
        /* 1 data block: no tree; 128: one level of one block; 129: two
         * level-0 blocks and a top; 16640 (65 MiB): 130 + 2 + 1. */
        CHECK(kos_verity_tree_geometry(4096, &levels, &blocks) == 0 && levels == 0 && blocks == 0);
        CHECK(kos_verity_tree_geometry(128 * 4096, &levels, &blocks) == 0 && levels == 1 && blocks == 1);
        CHECK(kos_verity_tree_geometry(129 * 4096, &levels, &blocks) == 0 && levels == 2 && blocks == 3);
        CHECK(kos_verity_tree_geometry(16640 * 4096ull, &levels, &blocks) == 0 && levels == 3 && blocks == 133);
        CHECK(kos_verity_image_size(8192, &size) == 0 && size == 16384);
        CHECK(kos_verity_image_size(0, &size) == -EINVAL);
        CHECK(kos_verity_image_size(4097, &size) == -EINVAL);
        /* The format's largest file: 2^44 bytes of data still computes. */
        CHECK(kos_verity_image_size(UINT64_C(1) << 44, &size) == 0 && size > (UINT64_C(1) << 44));
}

TEST(manifest_format_writes_verify_only_for_hash_tree_and_round_trips_its_bytes) {
        struct kos_manifest *m = NULL, *again = NULL;
        char *json = NULL, *json_again = NULL, *plain = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        size_t len, len_again, plain_len;
        CHECK(parse_component("\"size\": 16384, " VERITY_8192 ", \"verify\": \"hash-tree\"", &m) == 0);
        int r = kos_manifest_format(m, &json, &len);
        if (r == 0)
                r = kos_manifest_parse(json, len, &again, &err);
        if (r == 0)
                r = kos_manifest_format(again, &json_again, &len_again);
        m->components[0].verify = KOS_VERIFY_SHA256;
        if (r == 0)
                r = kos_manifest_format(m, &plain, &plain_len);
        bool ok = r == 0 && again->components[0].verify == KOS_VERIFY_HASH_TREE && len == len_again &&
                  memcmp(json, json_again, len) == 0 &&
                  strstr(json, "\"hash_offset\": 8192\n      },\n      \"verify\": \"hash-tree\"\n") &&
                  !strstr(plain, "verify");
        free(json);
        free(json_again);
        free(plain);
        kos_manifest_free(m);
        kos_manifest_free(again);
        CHECK(ok);
}

TEST(hash_tree_reason_string_is_stable) {
        CHECK(strcmp(kos_reason_to_string(KOS_REASON_HASH_TREE_MISMATCH), "hash-tree-mismatch") == 0);
        CHECK(strcmp(kos_verify_to_string(KOS_VERIFY_HASH_TREE), "hash-tree") == 0);
        CHECK(strcmp(kos_verify_to_string(KOS_VERIFY_SHA256), "sha256") == 0);
}

/* --- images made by veritysetup --- */

struct image {
        char path[512];
        uint64_t hash_offset, size;
        uint8_t root_hash[KOS_SHA256_LEN];
};

/* data_blocks of random data (or a hole, with sparse), then `veritysetup
 * format` with the tree in the same file, as kos component build does. */
static int make_verity_image(const char *name, uint64_t data_blocks, bool sparse, struct image *ret) {
        char command[1200], output[4096];
        struct stat st;

        snprintf(ret->path, sizeof ret->path, "%s/%s", test_tmpdir(), name);
        ret->hash_offset = data_blocks * 4096;
        if (sparse)
                snprintf(command, sizeof command, "truncate -s %llu '%s'", (unsigned long long)ret->hash_offset,
                         ret->path);
        else
                snprintf(command, sizeof command, "head -c %llu /dev/urandom >'%s'",
                         (unsigned long long)ret->hash_offset, ret->path);
        if (system(command) != 0)
                return -EIO;
        snprintf(command, sizeof command, "veritysetup format --hash=sha256 --hash-offset=%llu '%s' '%s' 2>&1",
                 (unsigned long long)ret->hash_offset, ret->path, ret->path);
        FILE *p = popen(command, "r");
        if (!p)
                return -errno;
        size_t n = fread(output, 1, sizeof output - 1, p);
        output[n] = '\0';
        if (pclose(p) != 0) {
                fprintf(stderr, "  veritysetup failed (apt-get install cryptsetup-bin): %s\n", output);
                return -EIO;
        }
        const char *line = strstr(output, "Root hash:");
        if (!line)
                return -EBADMSG;
        line += strlen("Root hash:");
        line += strspn(line, " \t");
        if (kos_hex_decode(line, strcspn(line, "\n"), ret->root_hash, KOS_SHA256_LEN) < 0 || stat(ret->path, &st) < 0)
                return -EBADMSG;
        ret->size = (uint64_t)st.st_size;
        return 0;
}

static int flip_byte(const char *path, uint64_t offset) {
        uint8_t b;
        int fd = open(path, O_RDWR | O_CLOEXEC);
        int r = fd >= 0 && pread(fd, &b, 1, (off_t)offset) == 1 && (b ^= 0x01, pwrite(fd, &b, 1, (off_t)offset) == 1)
                        ? 0
                        : -EIO;
        if (fd >= 0)
                close(fd);
        return r;
}

static enum kos_verity_tree_result verify_image(const struct image *img, uint64_t *ret_read, struct kos_error *ret_error) {
        int fd = open(img->path, O_RDONLY | O_CLOEXEC);
        uint64_t read_bytes = 0;

        if (fd < 0)
                return KOS_VERITY_TREE_IO_ERROR;
        enum kos_verity_tree_result r = kos_verity_tree_verify(fd, img->hash_offset, img->root_hash, &read_bytes,
                                                               ret_error);
        close(fd);
        if (ret_read)
                *ret_read = read_bytes;
        return r;
}

TEST(verity_tree_of_veritysetup_images_verifies_reading_only_superblock_and_tree) {
        static const struct {
                uint64_t data_blocks;
                bool sparse;
        } cases[] = {{1, false}, {2, false}, {128, false}, {300, false}, {16640, true}};
        struct kos_error error;

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct image img;
                uint64_t read_bytes, expected_size, levels_blocks;
                unsigned levels;
                CHECK(make_verity_image("img", cases[i].data_blocks, cases[i].sparse, &img) == 0);
                /* The layout veritysetup wrote is the one the parser demands. */
                CHECK(kos_verity_image_size(img.hash_offset, &expected_size) == 0 && expected_size == img.size);
                CHECK(kos_verity_tree_geometry(img.hash_offset, &levels, &levels_blocks) == 0);
                CHECK(verify_image(&img, &read_bytes, &error) == KOS_VERITY_TREE_MATCH);
                /* The superblock and each tree block once, never a data block
                 * (one data block is its own root: it is read). */
                uint64_t want = KOS_VERITY_SUPERBLOCK_SIZE + (levels ? levels_blocks * 4096 : 4096);
                if (read_bytes != want)
                        fprintf(stderr, "  %llu data blocks: read %llu bytes, wanted %llu\n",
                                (unsigned long long)cases[i].data_blocks, (unsigned long long)read_bytes,
                                (unsigned long long)want);
                CHECK(read_bytes == want);
                /* A different root hash is refused. */
                img.root_hash[5] ^= 1;
                CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
                CHECK(unlink(img.path) == 0);
        }
}

TEST(verity_tree_rejects_a_flipped_byte_in_any_tree_block) {
        struct image img;
        struct kos_error error;
        /* 16640 blocks: top at +4096, level 1 (2 blocks) at +8192, level 0
         * (130 blocks) from +16384. */
        CHECK(make_verity_image("img", 16640, true, &img) == 0);
        const uint64_t tree = img.hash_offset + 4096;
        const uint64_t places[] = {tree + 17, tree + 4095, tree + 4096 + 100, tree + 3 * 4096 + 31,
                                   tree + 3 * 4096 + 129 * 4096 + 4095, img.size - 1};
        for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
                CHECK(flip_byte(img.path, places[i]) == 0);
                CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
                CHECK(error.msg[0]);
                CHECK(flip_byte(img.path, places[i]) == 0);
                CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MATCH);
        }
        /* The top block: its used slots no longer match the blocks below
         * (its unused ones are zero, and the root hash covers all of it). */
        CHECK(flip_byte(img.path, tree) == 0);
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
        CHECK(strstr(error.msg, "its entry in level 2"));
        CHECK(error.code == -EBADMSG);
}

TEST(verity_tree_does_not_read_data_so_a_flipped_data_byte_passes) {
        struct image img;
        struct kos_error error;
        uint64_t read_bytes;
        CHECK(make_verity_image("img", 300, false, &img) == 0);
        CHECK(flip_byte(img.path, 5000) == 0);
        /* By design: the data is dm-verity's to check, as it is read. */
        CHECK(verify_image(&img, &read_bytes, &error) == KOS_VERITY_TREE_MATCH);
        CHECK(read_bytes < 5 * 4096);
}

TEST(verity_tree_rejects_a_truncated_file_and_a_wrong_superblock) {
        struct image img;
        struct kos_error error;
        CHECK(make_verity_image("img", 300, false, &img) == 0);
        CHECK(truncate(img.path, (off_t)(img.size - 4096)) == 0);
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_SHORT_READ);
        CHECK(truncate(img.path, (off_t)img.hash_offset + 100) == 0);
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_SHORT_READ);
        CHECK(error.code == -ENODATA && strstr(error.msg, "inside the dm-verity tree"));
        CHECK(make_verity_image("img2", 300, false, &img) == 0);
        /* data_blocks (offset 72) one less: a shorter device the tree still covers. */
        CHECK(flip_byte(img.path, img.hash_offset + 72) == 0);
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
        CHECK(strstr(error.msg, "data blocks"));
        CHECK(flip_byte(img.path, img.hash_offset + 72) == 0);
        CHECK(flip_byte(img.path, img.hash_offset + 88) == 0); /* the salt: every digest changes */
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
        CHECK(flip_byte(img.path, img.hash_offset + 88) == 0);
        CHECK(flip_byte(img.path, img.hash_offset) == 0); /* the magic */
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
        CHECK(strstr(error.msg, "no dm-verity superblock"));
}

/* A tree made here with OpenSSL, the way veritysetup lays it out, but with
 * a non-zero byte in a digest slot no block uses, and a root hash computed
 * over exactly that: the hash chain holds, and only the unused-slot rule
 * refuses it (as `veritysetup verify` does). */
static void put_le(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static int sha256_salted(const uint8_t *salt, size_t salt_size, const uint8_t *block, uint8_t ret[static 32]) {
        unsigned int len = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, salt, salt_size) == 1 &&
                 EVP_DigestUpdate(ctx, block, 4096) == 1 && EVP_DigestFinal_ex(ctx, ret, &len) == 1;
        EVP_MD_CTX_free(ctx);
        return ok ? 0 : -EIO;
}

TEST(verity_tree_refuses_non_zero_unused_slots_even_when_the_root_hash_matches) {
        static uint8_t file[4 * 4096]; /* 2 data blocks, superblock block, 1 tree block */
        const uint8_t salt[4] = {1, 2, 3, 4};
        struct image img = {.hash_offset = 8192, .size = sizeof file};
        struct kos_error error;
        uint8_t *sb = file + 8192, *tree = file + 12288;

        memset(file, 0x11, 8192);
        memcpy(sb, "verity\0\0", 8);
        put_le(sb + 8, 1, 4);
        put_le(sb + 12, 1, 4);
        memcpy(sb + 32, "sha256", 6);
        put_le(sb + 64, 4096, 4);
        put_le(sb + 68, 4096, 4);
        put_le(sb + 72, 2, 8);
        put_le(sb + 80, sizeof salt, 2);
        memcpy(sb + 88, salt, sizeof salt);
        CHECK(sha256_salted(salt, sizeof salt, file, tree) == 0);
        CHECK(sha256_salted(salt, sizeof salt, file + 4096, tree + 32) == 0);
        CHECK(sha256_salted(salt, sizeof salt, tree, img.root_hash) == 0);
        snprintf(img.path, sizeof img.path, "%s/hand", test_tmpdir());
        int fd = open(img.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0 && kos_write_all(fd, file, sizeof file) == 0 && close(fd) == 0);
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MATCH);
        tree[64] = 0x80; /* the third slot: no third data block */
        CHECK(sha256_salted(salt, sizeof salt, tree, img.root_hash) == 0);
        fd = open(img.path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        CHECK(fd >= 0 && kos_write_all(fd, file, sizeof file) == 0 && close(fd) == 0);
        CHECK(verify_image(&img, NULL, &error) == KOS_VERITY_TREE_MISMATCH);
        CHECK(strstr(error.msg, "unused byte 64 is not zero"));
}

/* --- selection --- */

static int copy_into_components(const struct kos_imagefs *img, const char *path, struct kos_blob *ret) {
        char *data = NULL, hex[KOS_SHA256_HEX_LEN + 1];
        size_t len;
        int r = kos_read_file_at(AT_FDCWD, path, 1 << 30, &data, &len);
        if (r >= 0)
                r = kos_sha256(data, len, ret->sha256);
        if (r >= 0) {
                ret->size = len;
                kos_hex_encode(ret->sha256, KOS_SHA256_LEN, hex);
                r = kos_write_file_atomic_at(img->components_fd, hex, data, len, 0644);
        }
        free(data);
        return r;
}

static int component_path(const struct kos_blob *b, char ret[static 700]) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        kos_hex_encode(b->sha256, KOS_SHA256_LEN, hex);
        snprintf(ret, 700, "%s/imagefs/components/%s", test_tmpdir(), hex);
        return 0;
}

/* An ImageFS with a kernel, an initrd and one 300-block hash-tree component
 * "root"; ret_m is a manifest for them (not signed: kos_check_components). */
struct tree_fixture {
        struct kos_imagefs img;
        struct image image;
        struct kos_component component;
        struct kos_manifest m;
        char component_file[700];
};

static int tree_fixture(struct tree_fixture *f) {
        char path[600];
        int r;

        snprintf(path, sizeof path, "%s/imagefs", test_tmpdir());
        f->img = (struct kos_imagefs)KOS_IMAGEFS_NULL;
        if ((r = kos_imagefs_init(path)) < 0 || (r = kos_imagefs_open(path, &f->img)) < 0 ||
            (r = make_verity_image("root.img", 300, false, &f->image)) < 0)
                return r;
        f->m = (struct kos_manifest){.format = 1, .name = "t", .version = 1, .cmdline = (char *)"",
                                     .n_components = 1, .components = &f->component};
        f->component = (struct kos_component){.name = "root", .type = KOS_COMPONENT_EROFS,
                                              .verify = KOS_VERIFY_HASH_TREE};
        f->component.verity.enabled = true;
        f->component.verity.hash_offset = f->image.hash_offset;
        memcpy(f->component.verity.root_hash, f->image.root_hash, KOS_SHA256_LEN);
        snprintf(path, sizeof path, "%s/kernel", test_tmpdir());
        if ((r = kos_write_file_atomic_at(AT_FDCWD, path, "KERNEL", 6, 0644)) < 0 ||
            (r = copy_into_components(&f->img, path, &f->m.kernel)) < 0)
                return r;
        snprintf(path, sizeof path, "%s/initrd", test_tmpdir());
        if ((r = kos_write_file_atomic_at(AT_FDCWD, path, "INITRD", 6, 0644)) < 0 ||
            (r = copy_into_components(&f->img, path, &f->m.initrd)) < 0 ||
            (r = copy_into_components(&f->img, f->image.path, &f->component.blob)) < 0)
                return r;
        return component_path(&f->component.blob, f->component_file);
}

static bool check(struct tree_fixture *f, bool sha256_only, struct kos_candidate *c) {
        struct kos_select_options o = {.sha256_only = sha256_only};
        memset(c, 0, sizeof *c);
        return kos_check_components(&f->img, &f->m, &o, c, NULL, NULL);
}

TEST(selection_checks_a_hash_tree_component_by_its_tree_and_reports_what_it_read) {
        struct tree_fixture f;
        struct kos_candidate c;
        CHECK(tree_fixture(&f) == 0);
        CHECK(check(&f, false, &c));
        CHECK(c.n_checks == 1 && c.checks[0] == KOS_VERIFY_HASH_TREE);
        /* kernel and initrd (12 bytes), the superblock and 4 tree blocks:
         * far less than the 1.2 MB image. */
        CHECK(c.hashed_bytes == 12 + 512 + 4 * 4096);
        CHECK(c.hashed_bytes < f.image.size / 50);
        CHECK(check(&f, true, &c));
        CHECK(c.checks[0] == KOS_VERIFY_SHA256 && c.hashed_bytes == 12 + f.image.size);
        kos_imagefs_close(&f.img);
}

TEST(selection_rejects_a_flipped_tree_byte_as_hash_tree_mismatch) {
        struct tree_fixture f;
        struct kos_candidate c;
        CHECK(tree_fixture(&f) == 0);
        const uint64_t tree = f.image.hash_offset + 4096;
        CHECK(flip_byte(f.component_file, tree + 4096 + 77) == 0); /* a level-0 block */
        CHECK(!check(&f, false, &c) && c.reason == KOS_REASON_HASH_TREE_MISMATCH);
        CHECK(strstr(c.detail, "root: components/") && strstr(c.detail, "level 0"));
        CHECK(flip_byte(f.component_file, tree + 4096 + 77) == 0);
        CHECK(flip_byte(f.component_file, tree + 5) == 0); /* the top block, covered by the root hash */
        CHECK(!check(&f, false, &c) && c.reason == KOS_REASON_HASH_TREE_MISMATCH);
        CHECK(strstr(c.detail, "its entry in level 1"));
        CHECK(flip_byte(f.component_file, tree + 5) == 0);
        /* A root hash other than the one the tree leads to. */
        f.component.verity.root_hash[0] ^= 1;
        CHECK(!check(&f, false, &c) && c.reason == KOS_REASON_HASH_TREE_MISMATCH);
        CHECK(strstr(c.detail, "does not hash to the signed root hash"));
        f.component.verity.root_hash[0] ^= 1;
        CHECK(check(&f, false, &c));
        CHECK(flip_byte(f.component_file, f.image.hash_offset + 12) == 0); /* superblock: hash type */
        CHECK(!check(&f, false, &c) && c.reason == KOS_REASON_HASH_TREE_MISMATCH);
        CHECK(strstr(c.detail, "hash type"));
        kos_imagefs_close(&f.img);
}

TEST(selection_passes_a_flipped_data_byte_by_tree_and_rejects_it_in_full) {
        struct tree_fixture f;
        struct kos_candidate c;
        CHECK(tree_fixture(&f) == 0);
        CHECK(flip_byte(f.component_file, 123456) == 0);
        CHECK(check(&f, false, &c));
        CHECK(!check(&f, true, &c) && c.reason == KOS_REASON_COMPONENT_HASH_MISMATCH);
        kos_imagefs_close(&f.img);
}

TEST(selection_rejects_a_truncated_hash_tree_component_before_reading_it) {
        struct tree_fixture f;
        struct kos_candidate c;
        CHECK(tree_fixture(&f) == 0);
        CHECK(truncate(f.component_file, (off_t)(f.image.size - 4096)) == 0);
        CHECK(!check(&f, false, &c) && c.reason == KOS_REASON_COMPONENT_SIZE_MISMATCH);
        CHECK(c.hashed_bytes == 0);
        kos_imagefs_close(&f.img);
}

static void count_handover(const struct kos_candidate *c, const struct kos_manifest *m, int kernel_fd, int initrd_fd,
                           void *userdata) {
        char kernel[7] = "";
        if (pread(kernel_fd, kernel, 6, 0) == 6 && strcmp(kernel, "KERNEL") == 0)
                (*(int *)userdata)++;
}

/* The Boot Kernel loads the System Kernel while the components are checked:
 * with a tree job among them, the kernel and initrd still come first, and a
 * tree that fails afterwards still rejects the manifest. */
TEST(boot_files_are_handed_over_before_hash_tree_components_are_checked) {
        struct tree_fixture f;
        struct kos_candidate c = {0};
        int calls = 0, kfd = -1, ifd = -1;
        CHECK(tree_fixture(&f) == 0);
        struct kos_select_options o = {
                .capture_boot_files = true, .boot_files_verified = count_handover, .boot_files_userdata = &calls};
        CHECK(kos_check_components(&f.img, &f.m, &o, &c, &kfd, &ifd));
        CHECK(calls == 1 && kfd >= 0 && ifd >= 0);
        close(kfd);
        close(ifd);
        kfd = ifd = -1;
        CHECK(flip_byte(f.component_file, f.image.hash_offset + 4096 + 4096) == 0);
        memset(&c, 0, sizeof c);
        CHECK(!kos_check_components(&f.img, &f.m, &o, &c, &kfd, &ifd));
        CHECK(calls == 2 && kfd == -1 && ifd == -1 && c.reason == KOS_REASON_HASH_TREE_MISMATCH);
        kos_imagefs_close(&f.img);
}

/* --- the unconfirmed marker --- */

static int marker_path(const uint8_t id[static KOS_SHA256_LEN], char ret[static 700]) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        kos_hex_encode(id, KOS_SHA256_LEN, hex);
        snprintf(ret, 700, "%s/imagefs/boot-state/%s.unconfirmed", test_tmpdir(), hex);
        return 0;
}

TEST(unconfirmed_marker_is_set_durably_found_and_confirmed) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_boot_state st;
        uint8_t id[KOS_SHA256_LEN];
        char path[700];
        struct stat s;
        bool present = true;

        snprintf(path, sizeof path, "%s/imagefs", test_tmpdir());
        CHECK(kos_sha256("m", 1, id) == 0);
        CHECK(kos_imagefs_init(path) == 0 && kos_imagefs_open(path, &img) == 0);
        CHECK(kos_boot_state_is_unconfirmed(&img, id, &present) == 0 && !present);
        CHECK(kos_boot_state_confirm(&img, id) == 0); /* nothing to confirm: fine */
        CHECK(kos_boot_state_set_unconfirmed(&img, id) == 0);
        CHECK(kos_boot_state_is_unconfirmed(&img, id, &present) == 0 && present);
        CHECK(marker_path(id, path) == 0 && lstat(path, &s) == 0 && S_ISREG(s.st_mode) && s.st_size == 0);
        CHECK(kos_boot_state_set_unconfirmed(&img, id) == 0); /* again: stays */
        /* Independent of boot counting: no tries or good state appears. */
        CHECK(kos_boot_state_read(&img, id, &st) == 0 && st.kind == KOS_BOOT_STATE_NONE);
        CHECK(kos_boot_state_confirm(&img, id) == 0);
        CHECK(kos_boot_state_is_unconfirmed(&img, id, &present) == 0 && !present);
        kos_imagefs_close(&img);
}

TEST(planted_symlink_fifo_directory_or_device_as_marker_is_present_and_removed_without_following) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        uint8_t id[KOS_SHA256_LEN];
        char path[800], marker[700], target[700];
        struct stat s;
        bool present;

        snprintf(path, sizeof path, "%s/imagefs", test_tmpdir());
        CHECK(kos_sha256("m", 1, id) == 0);
        CHECK(kos_imagefs_init(path) == 0 && kos_imagefs_open(path, &img) == 0);
        CHECK(mkdirat(img.root_fd, KOS_BOOT_STATE_DIR, 0755) == 0 || errno == EEXIST);
        CHECK(marker_path(id, marker) == 0);
        snprintf(target, sizeof target, "%s/victim", test_tmpdir());
        CHECK(kos_write_file_atomic_at(AT_FDCWD, target, "keep", 4, 0644) == 0);
        for (int kind = 0; kind < 5; kind++) {
                int made = kind == 0   ? symlink(target, marker)
                           : kind == 1 ? mkfifo(marker, 0644)
                           : kind == 2 ? mkdir(marker, 0755)
                           : kind == 3 ? symlink("/nonexistent/dangling", marker)
                                       : mknod(marker, S_IFCHR | 0644, makedev(1, 3)); /* /dev/null's numbers */
                if (kind == 4 && made < 0 && errno == EPERM) {
                        fprintf(stderr, "  not root: the device node case is skipped\n");
                        continue;
                }
                CHECK(made == 0);
                /* Present (a full check follows), never opened: a FIFO would block. */
                present = false;
                CHECK(kos_boot_state_is_unconfirmed(&img, id, &present) == 0 && present);
                CHECK(kos_boot_state_set_unconfirmed(&img, id) == 0);
                CHECK(kos_boot_state_confirm(&img, id) == 0);
                CHECK(lstat(marker, &s) < 0 && errno == ENOENT);
                CHECK(stat(target, &s) == 0 && s.st_size == 4); /* the symlink's target is untouched */
        }
        /* A directory with entries is left (it costs full checks, nothing more). */
        CHECK(mkdir(marker, 0755) == 0);
        snprintf(path, sizeof path, "%s/x", marker);
        CHECK(kos_write_file_atomic_at(AT_FDCWD, path, "", 0, 0644) == 0);
        CHECK(kos_boot_state_confirm(&img, id) == -ENOTEMPTY);
        CHECK(kos_boot_state_is_unconfirmed(&img, id, &present) == 0 && present);
        kos_imagefs_close(&img);
}

/* The whole cycle through kos_select, with the Boot Kernel's callback: a
 * signed manifest "tree" (hash-tree component) before "full" (the same
 * component, sha256) in active. */
struct cycle {
        struct tree_fixture f;
        struct kos_component other; /* "full"'s own component, of another image */
        struct kos_keyring ring;
        int recorded;
};

static int record(const uint8_t id[static KOS_SHA256_LEN], void *userdata) {
        struct cycle *c = userdata;
        c->recorded++;
        return kos_boot_state_set_unconfirmed(&c->f.img, id);
}

static int failing_record(const uint8_t id[static KOS_SHA256_LEN], void *userdata) {
        return -EROFS;
}

static int install_signed(struct cycle *c, const char *name, struct kos_component *component, const char *secret) {
        struct kos_signature line;
        char *json = NULL, sig[128];
        size_t len;

        snprintf(c->f.m.name, sizeof c->f.m.name, "%s", name);
        c->f.m.components = component;
        int r = kos_manifest_format(&c->f.m, &json, &len);
        c->f.m.components = &c->f.component;
        if (r >= 0)
                r = kos_key_sign(secret, strlen(secret), json, len, line.signature, line.key_id);
        if (r >= 0) {
                kos_signature_format_line(&line, sig);
                r = kos_imagefs_install_manifest(&c->f.img, name, json, len, sig, strlen(sig));
        }
        free(json);
        return r;
}

static int cycle_fixture(struct cycle *c) {
        char *secret = NULL, *public = NULL;
        uint8_t key_id[KOS_KEY_ID_LEN];
        int r;

        memset(c, 0, sizeof *c);
        struct image other;
        if ((r = tree_fixture(&c->f)) < 0 || (r = make_verity_image("other.img", 2, false, &other)) < 0 ||
            (r = copy_into_components(&c->f.img, other.path, &c->other.blob)) < 0 ||
            (r = kos_key_generate(&secret, &public, key_id)) < 0)
                return r;
        c->other = (struct kos_component){.name = "root", .type = KOS_COMPONENT_EROFS, .blob = c->other.blob};
        r = kos_keyring_add_pem(&c->ring, public, strlen(public), "test.pem");
        if (r >= 0)
                r = install_signed(c, "tree", &c->f.component, secret);
        if (r >= 0)
                r = install_signed(c, "full", &c->other, secret);
        if (r >= 0)
                r = kos_write_file_atomic_at(c->f.img.root_fd, "active", "tree\nfull\n", 10, 0644);
        free(secret);
        free(public);
        return r;
}

static const char *select_once(struct cycle *c, int (*recorder)(const uint8_t *, void *), struct kos_candidate *ret) {
        struct kos_select_options o = {.record_unconfirmed = recorder, .consume_userdata = c};
        struct kos_selection s;
        static char selected[80];

        if (kos_select(&c->f.img, &c->ring, &o, &s) < 0)
                return "error";
        *ret = s.candidates[0];
        snprintf(selected, sizeof selected, "%s", s.selected >= 0 ? s.candidates[s.selected].name : "none");
        kos_selection_done(&s);
        return selected;
}

TEST(boot_that_was_never_confirmed_checks_hash_tree_components_in_full_and_falls_back) {
        struct cycle c;
        struct kos_candidate tree;
        uint8_t id[KOS_SHA256_LEN];
        bool present;
        CHECK(cycle_fixture(&c) == 0);

        /* First boot: checked by the tree, recorded as unconfirmed before it boots. */
        CHECK(strcmp(select_once(&c, record, &tree), "tree") == 0);
        memcpy(id, tree.id, sizeof id);
        CHECK(c.recorded == 1 && tree.checks[0] == KOS_VERIFY_HASH_TREE && !tree.full_check_why[0]);
        CHECK(kos_boot_state_is_unconfirmed(&c.f.img, id, &present) == 0 && present);
        /* Confirmed (Node Manager): the next boot is by the tree again. */
        CHECK(kos_boot_state_confirm(&c.f.img, id) == 0);
        CHECK(strcmp(select_once(&c, record, &tree), "tree") == 0 && tree.checks[0] == KOS_VERIFY_HASH_TREE);
        CHECK(c.recorded == 2);
        /* A data block goes bad. This boot passes (by design: dm-verity
         * restarts when the block is read) and is never confirmed... */
        CHECK(kos_boot_state_confirm(&c.f.img, id) == 0);
        CHECK(flip_byte(c.f.component_file, 8192 + 3) == 0);
        CHECK(strcmp(select_once(&c, record, &tree), "tree") == 0);
        CHECK(c.recorded == 3);
        /* ...so the next one hashes it in full, rejects it and falls back. */
        CHECK(strcmp(select_once(&c, record, &tree), "full") == 0);
        CHECK(tree.reason == KOS_REASON_COMPONENT_HASH_MISMATCH);
        CHECK(strstr(tree.full_check_why, "never confirmed"));
        CHECK(tree.checks[0] == KOS_VERIFY_SHA256);
        CHECK(c.recorded == 3); /* a full check needs no new record */
        /* And so on every boot until someone repairs it: no loop through "tree". */
        CHECK(strcmp(select_once(&c, record, &tree), "full") == 0);
        kos_imagefs_close(&c.f.img);
}

TEST(boot_that_cannot_be_recorded_as_unconfirmed_is_checked_in_full) {
        struct cycle c;
        struct kos_candidate tree;
        bool present;
        CHECK(cycle_fixture(&c) == 0);
        CHECK(strcmp(select_once(&c, failing_record, &tree), "tree") == 0);
        CHECK(tree.checks[0] == KOS_VERIFY_SHA256 && strstr(tree.full_check_why, "cannot record"));
        CHECK(kos_boot_state_is_unconfirmed(&c.f.img, tree.id, &present) == 0 && !present);
        CHECK(flip_byte(c.f.component_file, 8192 + 3) == 0);
        CHECK(strcmp(select_once(&c, failing_record, &tree), "full") == 0);
        CHECK(tree.reason == KOS_REASON_COMPONENT_HASH_MISMATCH);
        kos_imagefs_close(&c.f.img);
}
