/* SPDX-License-Identifier: MIT */
/* Names, hex, keys, signature lines and manifests: one test per rule. */
#include <string.h>

#include "keyring.h"
#include "manifest.h"
#include "signature.h"
#include "test.h"
#include "verify.h"

/* RFC 8032 section 7.1, test 1: public key and the signature of the empty message. */
static const char rfc8032_public[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char rfc8032_signature[] =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

TEST(name_accepts_documented_characters) {
        CHECK(kos_name_is_valid("base-os_1.2"));
        CHECK(kos_name_is_valid("a"));
        CHECK(kos_name_is_valid("0123456789012345678901234567890123456789012345678901234567890123"));
}

TEST(name_rejects_path_tricks_and_length) {
        CHECK(!kos_name_is_valid(""));
        CHECK(!kos_name_is_valid("."));
        CHECK(!kos_name_is_valid(".."));
        CHECK(!kos_name_is_valid("../etc"));
        CHECK(!kos_name_is_valid("a/b"));
        CHECK(!kos_name_is_valid("a b"));
        CHECK(!kos_name_is_valid("\xc3\xa9"));
        CHECK(!kos_name_is_valid("01234567890123456789012345678901234567890123456789012345678901234"));
}

TEST(hex_decode_is_exact_and_lowercase) {
        uint8_t out[2];
        CHECK(kos_hex_decode("0aff", 4, out, 2) == 0 && out[0] == 0x0a && out[1] == 0xff);
        CHECK(kos_hex_decode("0AFF", 4, out, 2) < 0);
        CHECK(kos_hex_decode("0af", 3, out, 2) < 0);
        CHECK(kos_hex_decode("0aff00", 6, out, 2) < 0);
        CHECK(kos_hex_decode("0xff", 4, out, 2) < 0);
}

TEST(sha256_golden_vector) {
        uint8_t d[KOS_SHA256_LEN];
        char hex[KOS_SHA256_HEX_LEN + 1];
        CHECK(kos_sha256("abc", 3, d) == 0);
        kos_hex_encode(d, sizeof d, hex);
        CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
}

TEST(key_id_golden_vector) {
        uint8_t raw[32], id[KOS_KEY_ID_LEN];
        char hex[KOS_KEY_ID_HEX_LEN + 1];
        CHECK(kos_hex_decode(rfc8032_public, 64, raw, 32) == 0);
        CHECK(kos_key_id_of(raw, id) == 0);
        kos_hex_encode(id, sizeof id, hex);
        CHECK(strcmp(hex, "21fe31dfa154a261") == 0);
}

TEST(ed25519_verifies_rfc8032_vector) {
        uint8_t raw[32], sig[64];
        CHECK(kos_hex_decode(rfc8032_public, 64, raw, 32) == 0);
        CHECK(kos_hex_decode(rfc8032_signature, 128, sig, 64) == 0);
        CHECK(kos_ed25519_verify(raw, "", 0, sig) == 1);
}

TEST(forgery_fails_to_verify) {
        uint8_t raw[32], sig[64];
        CHECK(kos_hex_decode(rfc8032_public, 64, raw, 32) == 0);
        CHECK(kos_hex_decode(rfc8032_signature, 128, sig, 64) == 0);
        CHECK(kos_ed25519_verify(raw, "x", 1, sig) == 0); /* other message */
        sig[10] ^= 1;
        CHECK(kos_ed25519_verify(raw, "", 0, sig) == 0); /* altered signature */
        sig[10] ^= 1;
        raw[0] ^= 1;
        CHECK(kos_ed25519_verify(raw, "", 0, sig) == 0); /* other key */
}

TEST(generated_key_signs_and_verifies) {
        char *secret = NULL, *public = NULL;
        uint8_t id[8], id2[8], sig[64], raw[32];
        CHECK(kos_key_generate(&secret, &public, id) == 0);
        CHECK(kos_key_sign(secret, strlen(secret), "message", 7, sig, id2) == 0);
        CHECK(memcmp(id, id2, 8) == 0);
        CHECK(kos_key_public_from_pem(public, strlen(public), raw) == 0);
        int ok = kos_ed25519_verify(raw, "message", 7, sig);
        int forged = kos_ed25519_verify(raw, "messagE", 7, sig);
        free(secret);
        free(public);
        CHECK(ok == 1 && forged == 0);
}

static const char good_line[] =
        "ed25519 21fe31dfa154a261 5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18Flbvi"
        "RlUUFDjnoQCw==\n";

TEST(signature_line_parses) {
        struct kos_signature_file f;
        char line[128];
        struct kos_error err = KOS_ERROR_NULL;
        CHECK(kos_signature_file_parse(good_line, strlen(good_line), &f, &err) == 0);
        CHECK(f.n == 1);
        kos_signature_format_line(&f.lines[0], line);
        CHECK(strcmp(line, good_line) == 0);
}

TEST(signature_without_final_newline_parses) {
        struct kos_signature_file f;
        struct kos_error err = KOS_ERROR_NULL;
        CHECK(kos_signature_file_parse(good_line, strlen(good_line) - 1, &f, &err) == 0 && f.n == 1);
}

static int parse_sig(const char *text) {
        struct kos_signature_file f;
        struct kos_error err = KOS_ERROR_NULL;
        return kos_signature_file_parse(text, strlen(text), &f, &err);
}

TEST(signature_rejects_truncated_base64) {
        char s[200];
        strcpy(s, good_line);
        strcpy(s + strlen(s) - 6, "==\n");
        CHECK(parse_sig(s) == -EBADMSG);
}

TEST(signature_rejects_noncanonical_base64) {
        char s[200];
        strcpy(s, good_line);
        /* The last data character carries 2 unused bits: 'w' -> 'x' decodes to
         * the same bytes but is not the canonical spelling. */
        char *p = strstr(s, "Cw==");
        CHECK(p);
        p[1] = 'x';
        CHECK(parse_sig(s) == -EBADMSG);
}

TEST(signature_rejects_unknown_algorithm_and_bad_key_id) {
        char s[200];
        strcpy(s, good_line);
        memcpy(s, "ed25518", 7);
        CHECK(parse_sig(s) == -EBADMSG);
        strcpy(s, good_line);
        s[8] = 'G';
        CHECK(parse_sig(s) == -EBADMSG);
        strcpy(s, good_line);
        s[8] = 'A'; /* uppercase hex is not the one spelling */
        CHECK(parse_sig(s) == -EBADMSG);
}

TEST(signature_rejects_extra_spaces_and_empty_lines) {
        char s[400];
        snprintf(s, sizeof s, " %s", good_line);
        CHECK(parse_sig(s) == -EBADMSG);
        snprintf(s, sizeof s, "%s\n", good_line);
        CHECK(parse_sig(s) == -EBADMSG);
        CHECK(parse_sig("") == -EBADMSG);
}

TEST(signature_rejects_too_many_lines) {
        char s[KOS_SIGNATURE_FILE_MAX];
        s[0] = '\0';
        for (int i = 0; i < KOS_SIGNATURE_MAX_LINES + 1; i++)
                strcat(s, good_line);
        CHECK(parse_sig(s) == -EBADMSG);
}

TEST(signature_verdicts_untrusted_invalid_valid) {
        struct kos_keyring ring = {0};
        struct kos_signature_file f;
        uint8_t id[8];
        struct kos_error err = KOS_ERROR_NULL;
        CHECK(kos_signature_file_parse(good_line, strlen(good_line), &f, &err) == 0);
        CHECK(kos_signature_file_verify(&f, &ring, "", 0, id) == KOS_SIGNATURE_KEY_UNTRUSTED);
        ring.n_keys = 1;
        CHECK(kos_hex_decode(rfc8032_public, 64, ring.keys[0].raw, 32) == 0);
        CHECK(kos_key_id_of(ring.keys[0].raw, ring.keys[0].id) == 0);
        CHECK(kos_signature_file_verify(&f, &ring, "", 0, id) == KOS_SIGNATURE_VALID);
        CHECK(kos_signature_file_verify(&f, &ring, "tampered", 8, id) == KOS_SIGNATURE_INVALID);
}

#define H64 "\"0000000000000000000000000000000000000000000000000000000000000000\""
#define VALID_MANIFEST                                                                                 \
        "{\"format\": 1, \"name\": \"demo\", \"version\": 3, \"kernel\": {\"sha256\": " H64             \
        ", \"size\": 10}, \"initrd\": {\"sha256\": " H64 ", \"size\": 20}, \"cmdline\": \"quiet\", "      \
        "\"components\": [{\"name\": \"base\", \"type\": \"squashfs\", \"sha256\": " H64 ", \"size\": 30}, " \
        "{\"name\": \"app\", \"type\": \"erofs\", \"sha256\": " H64 ", \"size\": 40}]}"

static int parse_manifest(const char *text) {
        struct kos_manifest *m = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        int r = kos_manifest_parse(text, strlen(text), &m, &err);
        kos_manifest_free(m);
        return r;
}

/* Replaces the first occurrence of from in VALID_MANIFEST by to. */
static int parse_variant(const char *from, const char *to) {
        char s[4096];
        const char *base = VALID_MANIFEST;
        const char *p = strstr(base, from);
        if (!p)
                return 12345;
        snprintf(s, sizeof s, "%.*s%s%s", (int)(p - base), base, to, p + strlen(from));
        return parse_manifest(s);
}

TEST(manifest_valid_parses_in_order) {
        struct kos_manifest *m = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        CHECK(kos_manifest_parse(VALID_MANIFEST, strlen(VALID_MANIFEST), &m, &err) == 0);
        int ok = strcmp(m->name, "demo") == 0 && m->version == 3 && m->n_components == 2 &&
                 strcmp(m->components[0].name, "base") == 0 && m->components[1].type == KOS_COMPONENT_EROFS &&
                 m->kernel.size == 10 && m->initrd.size == 20 && strcmp(m->cmdline, "quiet") == 0;
        kos_manifest_free(m);
        CHECK(ok);
}

TEST(manifest_format_round_trips) {
        struct kos_manifest *m = NULL, *again = NULL;
        char *json = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        size_t len;
        CHECK(kos_manifest_parse(VALID_MANIFEST, strlen(VALID_MANIFEST), &m, &err) == 0);
        CHECK(kos_manifest_format(m, &json, &len) == 0);
        int r = kos_manifest_parse(json, len, &again, &err);
        int same = r == 0 && again->n_components == 2 && strcmp(again->components[1].name, "app") == 0 &&
                   again->version == 3;
        free(json);
        kos_manifest_free(m);
        kos_manifest_free(again);
        CHECK(same);
}

/* security_version: optional, 0 to 2^32-1, strictly an integer. */
static int parse_security_version(const char *value, uint32_t *ret) {
        char s[4096], field[64];
        const char *base = VALID_MANIFEST, *p = strstr(base, "\"version\": 3");
        struct kos_manifest *m = NULL;
        struct kos_error err = KOS_ERROR_NULL;

        snprintf(field, sizeof field, "\"version\": 3, \"security_version\": %s", value);
        snprintf(s, sizeof s, "%.*s%s%s", (int)(p - base), base, field, p + strlen("\"version\": 3"));
        int r = kos_manifest_parse(s, strlen(s), &m, &err);
        if (r == 0)
                *ret = m->security_version;
        kos_manifest_free(m);
        return r;
}

TEST(manifest_security_version_absent_is_0) {
        struct kos_manifest *m = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        CHECK(kos_manifest_parse(VALID_MANIFEST, strlen(VALID_MANIFEST), &m, &err) == 0);
        uint32_t v = m->security_version;
        kos_manifest_free(m);
        CHECK(v == 0);
}

TEST(manifest_security_version_accepts_0_to_2_pow_32_minus_1) {
        uint32_t v = 99;
        CHECK(parse_security_version("0", &v) == 0 && v == 0);
        CHECK(parse_security_version("7", &v) == 0 && v == 7);
        CHECK(parse_security_version("4294967295", &v) == 0 && v == UINT32_MAX);
}

TEST(manifest_security_version_rejects_2_pow_32_negative_string_and_float) {
        uint32_t v;
        CHECK(parse_security_version("4294967296", &v) == -EBADMSG);
        CHECK(parse_security_version("18446744073709551616", &v) == -EBADMSG);
        CHECK(parse_security_version("-1", &v) == -EBADMSG);
        CHECK(parse_security_version("\"1\"", &v) == -EBADMSG);
        CHECK(parse_security_version("1.0", &v) == -EBADMSG);
        CHECK(parse_security_version("null", &v) == -EBADMSG);
        CHECK(parse_security_version("1, \"security_version\": 1", &v) == -EBADMSG); /* duplicate */
}

TEST(manifest_format_writes_security_version_only_when_not_0) {
        struct kos_manifest *m = NULL, *again = NULL;
        char *plain = NULL, *with = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        size_t len;
        CHECK(kos_manifest_parse(VALID_MANIFEST, strlen(VALID_MANIFEST), &m, &err) == 0);
        int r = kos_manifest_format(m, &plain, &len);
        m->security_version = 4000000000u;
        if (r == 0)
                r = kos_manifest_format(m, &with, &len);
        if (r == 0)
                r = kos_manifest_parse(with, len, &again, &err);
        bool ok = r == 0 && !strstr(plain, "security_version") &&
                  strstr(with, "  \"version\": 3,\n  \"security_version\": 4000000000,\n  \"kernel\"") &&
                  again->security_version == 4000000000u;
        free(plain);
        free(with);
        kos_manifest_free(m);
        kos_manifest_free(again);
        CHECK(ok);
}

TEST(manifest_rejects_duplicate_keys) {
        CHECK(parse_variant("\"version\": 3", "\"version\": 3, \"version\": 4") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30", "\"size\": 30, \"size\": 31") == -EBADMSG);
}

TEST(manifest_rejects_trailing_garbage) {
        char s[4096];
        snprintf(s, sizeof s, "%s x", VALID_MANIFEST);
        CHECK(parse_manifest(s) == -EBADMSG);
        snprintf(s, sizeof s, "%s{}", VALID_MANIFEST);
        CHECK(parse_manifest(s) == -EBADMSG);
}

TEST(manifest_rejects_unknown_format) {
        CHECK(parse_variant("\"format\": 1", "\"format\": 2") == -EBADMSG);
        CHECK(parse_variant("\"format\": 1", "\"format\": \"1\"") == -EBADMSG);
        CHECK(parse_variant("\"format\": 1, ", "") == -EBADMSG);
}

TEST(manifest_rejects_wrong_types) {
        CHECK(parse_variant("\"version\": 3", "\"version\": \"3\"") == -EBADMSG);
        CHECK(parse_variant("\"version\": 3", "\"version\": 3.0") == -EBADMSG);
        CHECK(parse_variant("\"version\": 3", "\"version\": -1") == -EBADMSG);
        CHECK(parse_variant("\"size\": 10", "\"size\": true") == -EBADMSG);
        CHECK(parse_variant("\"cmdline\": \"quiet\"", "\"cmdline\": null") == -EBADMSG);
        CHECK(parse_variant("\"type\": \"squashfs\"", "\"type\": \"btrfs\"") == -EBADMSG);
        CHECK(parse_manifest("[]") == -EBADMSG);
}

TEST(manifest_rejects_bad_names) {
        CHECK(parse_variant("\"name\": \"base\"", "\"name\": \"../base\"") == -EBADMSG);
        CHECK(parse_variant("\"name\": \"base\"", "\"name\": \"..\"") == -EBADMSG);
        CHECK(parse_variant("\"name\": \"demo\"", "\"name\": \"de/mo\"") == -EBADMSG);
        CHECK(parse_variant("\"name\": \"demo\"", "\"name\": \"\"") == -EBADMSG);
        CHECK(parse_variant("\"name\": \"app\"", "\"name\": \"base\"") == -EBADMSG); /* duplicate component */
}

TEST(manifest_rejects_bad_digests_and_sizes) {
        CHECK(parse_variant("\"0000000000000000000000000000000000000000000000000000000000000000\"",
                            "\"000000000000000000000000000000000000000000000000000000000000000A\"") == -EBADMSG);
        CHECK(parse_variant("\"0000000000000000000000000000000000000000000000000000000000000000\"", "\"00\"") == -EBADMSG);
        CHECK(parse_variant("\"size\": 10", "\"size\": 99999999999999999999") == -EBADMSG);
        CHECK(parse_variant("\"size\": 10", "\"size\": 17592186044417") == -EBADMSG); /* 16 TiB + 1 */
}

TEST(manifest_rejects_unknown_and_missing_keys) {
        CHECK(parse_variant("\"cmdline\"", "\"extra\": 1, \"cmdline\"") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30", "\"size\": 30, \"path\": \"/etc\"") == -EBADMSG);
        CHECK(parse_variant("\"cmdline\": \"quiet\", ", "") == -EBADMSG);
        CHECK(parse_variant("\"initrd\"", "\"initrd_\"") == -EBADMSG);
}

TEST(manifest_rejects_control_characters_and_bad_utf8) {
        CHECK(parse_variant("quiet", "qu\\niet") == -EBADMSG);
        CHECK(parse_variant("quiet", "qu\\u0000iet") == -EBADMSG);
        CHECK(parse_variant("quiet", "qu\xff" "iet") == -EBADMSG);
        CHECK(parse_variant("quiet", "caf\xc3\xa9") == 0); /* valid UTF-8 is fine */
}

TEST(manifest_rejects_empty_or_too_many_components) {
        char s[40000], *p;
        sprintf(s, "{\"format\": 1, \"name\": \"d\", \"version\": 0, \"kernel\": {\"sha256\": " H64
                   ", \"size\": 1}, \"initrd\": {\"sha256\": " H64 ", \"size\": 1}, \"cmdline\": \"\", \"components\": []}");
        CHECK(parse_manifest(s) == -EBADMSG);
        p = s + sprintf(s, "{\"format\": 1, \"name\": \"d\", \"version\": 0, \"kernel\": {\"sha256\": " H64
                          ", \"size\": 1}, \"initrd\": {\"sha256\": " H64 ", \"size\": 1}, \"cmdline\": \"\", \"components\": [");
        for (int i = 0; i <= KOS_MANIFEST_MAX_COMPONENTS; i++)
                p += sprintf(p, "%s{\"name\": \"c%d\", \"type\": \"ext4\", \"sha256\": " H64 ", \"size\": 1}", i ? "," : "", i);
        strcpy(p, "]}");
        CHECK(parse_manifest(s) == -EBADMSG);
}

#include "early.h"

TEST(cmdline_values_stay_valid_and_last_wins) {
        early_cmdline_set("console=ttyS0 kos.imagefs=UUID=ab-cd kos.imagefs_timeout=60 quiet kos.x=1 kos.x=2");
        const char *spec = early_cmdline_get("kos.imagefs");
        const char *timeout = early_cmdline_get("kos.imagefs_timeout");
        CHECK(spec && strcmp(spec, "UUID=ab-cd") == 0); /* not overwritten by the second lookup */
        CHECK(timeout && strcmp(timeout, "60") == 0);
        CHECK(strcmp(early_cmdline_get("quiet"), "") == 0);
        CHECK(strcmp(early_cmdline_get("kos.x"), "2") == 0);
        CHECK(early_cmdline_get("kos") == NULL);
        CHECK(early_cmdline_get("kos.imagefs_") == NULL);
}

TEST(manifest_accepts_encryption_and_verity) {
        struct kos_manifest *m = NULL;
        struct kos_error err = KOS_ERROR_NULL;
        int r = parse_variant("\"size\": 30}", "\"size\": 8192, \"encryption\": {\"type\": \"luks2\", \"key\": \"disk-key\"}, "
                              "\"verity\": {\"root_hash\": " H64 ", \"hash_offset\": 4096}}");
        CHECK(r == 0);
        char s[4096];
        const char *base = VALID_MANIFEST, *p = strstr(base, "\"size\": 30}");
        snprintf(s, sizeof s, "%.*s%s%s", (int)(p - base), base,
                 "\"size\": 8192, \"encryption\": {\"type\": \"luks2\", \"key\": \"k1\"}, \"verity\": {\"root_hash\": " H64
                 ", \"hash_offset\": 4096}}", p + strlen("\"size\": 30}"));
        CHECK(kos_manifest_parse(s, strlen(s), &m, &err) == 0);
        int ok = m->components[0].encryption.enabled && strcmp(m->components[0].encryption.key, "k1") == 0 &&
                 m->components[0].verity.enabled && m->components[0].verity.hash_offset == 4096 &&
                 !m->components[1].verity.enabled;
        kos_manifest_free(m);
        CHECK(ok);
}

TEST(manifest_rejects_bad_encryption_and_verity) {
        CHECK(parse_variant("\"size\": 30}", "\"size\": 30, \"encryption\": {\"type\": \"luks1\", \"key\": \"k\"}}") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30}", "\"size\": 30, \"encryption\": {\"type\": \"luks2\", \"key\": \"../k\"}}") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30}", "\"size\": 30, \"encryption\": {\"type\": \"luks2\"}}") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30}", "\"size\": 8192, \"verity\": {\"root_hash\": " H64 ", \"hash_offset\": 100}}") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30}", "\"size\": 8192, \"verity\": {\"root_hash\": " H64 ", \"hash_offset\": 12288}}") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30}", "\"size\": 8192, \"verity\": {\"root_hash\": \"00\", \"hash_offset\": 4096}}") == -EBADMSG);
        CHECK(parse_variant("\"size\": 30}", "\"size\": 8192, \"verity\": {\"root_hash\": " H64 ", \"hash_offset\": 4096, \"salt\": \"\"}}") == -EBADMSG);
}

/* --- early_load_modules: parallel, but never before a dependency --- */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static char fake_done[64][32];
static size_t fake_n_done;
static int fake_violations, fake_concurrent, fake_max_concurrent;

static bool fake_is_done(const char *name) {
        for (size_t i = 0; i < fake_n_done; i++)
                if (strcmp(fake_done[i], name) == 0)
                        return true;
        return false;
}

/* Records the order; checks what each module must follow; "slow" modules
 * take 20 ms so that independent ones overlap. */
static int fake_loader(int dirfd, const char *path) {
        static const char *const after[][2] = {{"jbd2", "crc"}, {"ext4", "jbd2"}, {"ext4", "crc"}, {"blk", "virtio"}};
        pthread_mutex_lock(&fake_lock);
        for (size_t i = 0; i < sizeof after / sizeof after[0]; i++)
                if (strcmp(path, after[i][0]) == 0 && !fake_is_done(after[i][1]))
                        fake_violations++;
        if (++fake_concurrent > fake_max_concurrent)
                fake_max_concurrent = fake_concurrent;
        pthread_mutex_unlock(&fake_lock);
        usleep(20000);
        pthread_mutex_lock(&fake_lock);
        fake_concurrent--;
        snprintf(fake_done[fake_n_done++], sizeof fake_done[0], "%s", path);
        pthread_mutex_unlock(&fake_lock);
        return strcmp(path, "broken") == 0 ? -ENOEXEC : 0;
}

static int run_fake_modules(const char *list, unsigned *loaded) {
        char path[512];
        snprintf(path, sizeof path, "%s/modules", test_tmpdir());
        if (kos_write_file_atomic_at(AT_FDCWD, path, list, strlen(list), 0644) < 0)
                return -EIO;
        fake_n_done = 0;
        fake_violations = fake_concurrent = fake_max_concurrent = 0;
        int (*saved)(int, const char *) = early_module_loader;
        early_module_loader = fake_loader;
        int r = early_load_modules(test_tmpdir(), path, loaded);
        early_module_loader = saved;
        return r;
}

TEST(modules_load_after_their_dependencies_and_in_parallel) {
        unsigned loaded = 0;
        CHECK(run_fake_modules("crc:\nvirtio:\nblk: virtio\njbd2: crc\next4: crc jbd2\nother:\n", &loaded) == 0);
        CHECK(loaded == 6 && fake_n_done == 6);
        CHECK(fake_violations == 0);
        if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
                CHECK(fake_max_concurrent > 1);
}

TEST(modules_without_deps_field_load_strictly_in_order) {
        unsigned loaded = 0;
        /* The old format: every line waits for all before it. */
        CHECK(run_fake_modules("virtio\nblk\ncrc\njbd2\next4\n", &loaded) == 0);
        CHECK(loaded == 5 && fake_violations == 0 && fake_max_concurrent == 1);
        CHECK(strcmp(fake_done[0], "virtio") == 0 && strcmp(fake_done[4], "ext4") == 0);
}

TEST(module_that_fails_is_reported_and_the_rest_still_load) {
        unsigned loaded = 0;
        CHECK(run_fake_modules("crc:\nbroken: crc\njbd2: crc\next4: crc jbd2 broken\n", &loaded) == -ENOEXEC);
        CHECK(loaded == 3 && fake_n_done == 4 && fake_violations == 0);
}

TEST(cmdline_seconds_take_0_to_3600_and_fall_back_otherwise) {
        early_cmdline_set("kos.a=0 kos.b=3600 kos.c=3601 kos.d=-1 kos.e=5s kos.f= kos.g=+7");
        CHECK(early_cmdline_seconds("kos.a", 9) == 0);
        CHECK(early_cmdline_seconds("kos.b", 9) == 3600);
        CHECK(early_cmdline_seconds("kos.c", 9) == 9);
        CHECK(early_cmdline_seconds("kos.d", 9) == 9);
        CHECK(early_cmdline_seconds("kos.e", 9) == 9);
        CHECK(early_cmdline_seconds("kos.f", 9) == 9);
        CHECK(early_cmdline_seconds("kos.g", 9) == 9);
        CHECK(early_cmdline_seconds("kos.absent", 9) == 9);
}

/* Signs text with a new key into a signature file; the key goes in ring. */
static int sign_into(const char *text, struct kos_keyring *ring, char sig_file[static 128]) {
        char *secret = NULL, *public = NULL;
        struct kos_signature line;
        uint8_t id[KOS_KEY_ID_LEN];
        int r = kos_key_generate(&secret, &public, id);
        if (r >= 0)
                r = kos_key_sign(secret, strlen(secret), text, strlen(text), line.signature, line.key_id);
        if (r >= 0 && ring)
                r = kos_keyring_add_pem(ring, public, strlen(public), "test.pem");
        if (r >= 0)
                kos_signature_format_line(&line, sig_file);
        free(secret);
        free(public);
        return r;
}

static enum kos_reason load_reason(const struct kos_keyring *ring, const char *json, const char *sig) {
        struct kos_loaded_manifest m;
        int r = kos_manifest_load_verified(ring, json, strlen(json), sig, strlen(sig), "test.json", &m);
        enum kos_reason reason = m.reason;
        bool consistent = (reason == KOS_REASON_NONE) == (r == 0) && (r == 0) == (m.manifest != NULL) &&
                          (reason != KOS_REASON_NONE || m.authenticated);
        kos_loaded_manifest_done(&m);
        return consistent ? reason : _KOS_REASON_MAX;
}

TEST(load_verified_authenticates_then_parses) {
        struct kos_keyring ring = {0}, other = {0};
        char sig[128], stranger_sig[128], junk_sig[128];
        CHECK(sign_into(VALID_MANIFEST, &ring, sig) == 0);
        CHECK(sign_into(VALID_MANIFEST, &other, stranger_sig) == 0);
        CHECK(load_reason(&ring, VALID_MANIFEST, sig) == KOS_REASON_NONE);
        CHECK(load_reason(&ring, VALID_MANIFEST, "garbage\n") == KOS_REASON_SIGNATURE_MALFORMED);
        CHECK(load_reason(&ring, VALID_MANIFEST, stranger_sig) == KOS_REASON_KEY_UNTRUSTED);
        CHECK(load_reason(&ring, VALID_MANIFEST " ", sig) == KOS_REASON_SIGNATURE_INVALID);
        /* Junk signed by a trusted key: authenticated, then the parser rejects it. */
        CHECK(sign_into("{", &ring, junk_sig) == 0);
        CHECK(load_reason(&ring, "{", junk_sig) == KOS_REASON_MANIFEST_MALFORMED);
        CHECK(load_reason(NULL, VALID_MANIFEST, sig) == KOS_REASON_KEY_UNTRUSTED);
}
