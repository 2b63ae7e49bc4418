/* SPDX-License-Identifier: MIT */
/* The DataFS's secret off the TPM (lib/system/datafs-key.c): the signed
 * cmdline's mode, the key slot's passphrase, and the LUKS2 token (the
 * systemd-tpm2 layout) that carries the sealed object, which is read from
 * the disk and so checked rule by rule. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "boot-info.h"
#include "datafs-key.h"
#include "test.h"

static void sample_key(struct kos_sealed_key *k) {
        memset(k, 0, sizeof *k);
        k->pcr_mask = DATAFS_SEAL_PCRS;
        memset(k->pcr_values[7], 0x77, KOS_SHA256_LEN);
        memset(k->pcr_values[15], 0x15, KOS_SHA256_LEN);
        k->private_len = 222;
        k->public_len = 78;
        for (unsigned i = 0; i < k->private_len; i++)
                k->private_area[i] = (uint8_t)(i * 7 + 1);
        for (unsigned i = 0; i < k->public_len; i++)
                k->public_area[i] = (uint8_t)(i * 13 + 5);
}

/* The token as written, with one member replaced (value NULL: removed). */
static int parse_with(const char *member, json_t *value, struct datafs_sealed *ret, int *ret_slot) {
        struct datafs_sealed k = {.authorized = false};
        char buf[DATAFS_TOKEN_MAX];

        sample_key(&k.pcr);
        if (datafs_token_format(&k, 1, 5, buf, sizeof buf) < 0)
                return -999;
        json_t *o = json_loads(buf, 0, NULL);
        if (value)
                json_object_set_new(o, member, value);
        else
                json_object_del(o, member);
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        uint64_t generation;
        int r = datafs_token_parse(text, ret, ret_slot, &generation);
        free(text);
        return r;
}

TEST(datafs_token_carries_the_sealed_object_in_the_systemd_tpm2_layout) {
        struct datafs_sealed sealed = {.authorized = false}, parsed;
        struct kos_sealed_key k, back;
        char buf[DATAFS_TOKEN_MAX];
        int slot = -1;
        uint64_t generation = 0;

        sample_key(&k);
        sealed.pcr = k;
        CHECK(datafs_token_format(&sealed, 1, 5, buf, sizeof buf) == 0);
        json_t *o = json_loads(buf, 0, NULL);
        CHECK(o);
        CHECK(strcmp(json_string_value(json_object_get(o, "type")), "systemd-tpm2") == 0);
        CHECK(strcmp(json_string_value(json_array_get(json_object_get(o, "keyslots"), 0)), "1") == 0);
        CHECK(json_integer_value(json_array_get(json_object_get(o, "tpm2-pcrs"), 0)) == 7);
        CHECK(json_integer_value(json_array_get(json_object_get(o, "tpm2-pcrs"), 1)) == 15);
        CHECK(strcmp(json_string_value(json_object_get(o, "tpm2-pcr-bank")), "sha256") == 0);
        CHECK(strcmp(json_string_value(json_object_get(o, "tpm2-primary-alg")), "ecc") == 0);
        CHECK(json_is_false(json_object_get(o, "tpm2-pin")));
        CHECK(strlen(json_string_value(json_object_get(o, "tpm2-policy-hash"))) == 64);
        json_decref(o);
        CHECK(datafs_token_parse(buf, &parsed, &slot, &generation) == 0);
        CHECK(!parsed.authorized);
        back = parsed.pcr;
        CHECK(slot == 1 && generation == 5);
        CHECK(back.pcr_mask == k.pcr_mask && back.private_len == k.private_len && back.public_len == k.public_len);
        CHECK(memcmp(back.private_area, k.private_area, k.private_len) == 0);
        CHECK(memcmp(back.public_area, k.public_area, k.public_len) == 0);
        CHECK(memcmp(back.pcr_values[7], k.pcr_values[7], KOS_SHA256_LEN) == 0);
        CHECK(memcmp(back.pcr_values[15], k.pcr_values[15], KOS_SHA256_LEN) == 0);
}

/* tpm2-blob is exactly TPM2B_PRIVATE then TPM2B_PUBLIC: a byte more, a byte
 * less, an empty part or text that is not base64 is not ours. */
TEST(datafs_token_refuses_a_blob_that_is_not_exactly_two_tpm2bs) {
        struct datafs_sealed k;
        int slot;
        uint8_t blob[600];
        char b64[900];

        /* 2+3 private, 2+2 public, then one byte too many */
        const uint8_t parts[] = {0, 3, 1, 2, 3, 0, 2, 4, 5, 9};
        memcpy(blob, parts, sizeof parts);
        EVP_EncodeBlock((unsigned char *)b64, blob, sizeof parts);
        CHECK(parse_with("tpm2-blob", json_string(b64), &k, &slot) == -EBADMSG);
        EVP_EncodeBlock((unsigned char *)b64, blob, sizeof parts - 1);
        CHECK(parse_with("tpm2-blob", json_string(b64), &k, &slot) == 0);
        EVP_EncodeBlock((unsigned char *)b64, blob, sizeof parts - 2);
        CHECK(parse_with("tpm2-blob", json_string(b64), &k, &slot) == -EBADMSG);
        const uint8_t empty[] = {0, 0, 0, 2, 4, 5};
        EVP_EncodeBlock((unsigned char *)b64, empty, sizeof empty);
        CHECK(parse_with("tpm2-blob", json_string(b64), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-blob", json_string("not base64!"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-blob", json_string(""), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-blob", json_integer(1), &k, &slot) == -EBADMSG);
}

/* The policy is PCR 7 and 15, SHA-256: a token naming other PCRs was not
 * made by KOS (and would unseal under another policy than docs/tpm.md's). */
TEST(datafs_token_refuses_other_pcrs_banks_types_and_key_slots) {
        struct datafs_sealed k;
        int slot;

        CHECK(parse_with("tpm2-pcrs", json_pack("[i]", 15), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-pcrs", json_pack("[i, i, i]", 7, 8, 15), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-pcrs", json_pack("[i, i]", 15, 7), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-pcr-bank", json_string("sha1"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("type", json_string("luks2-keyring"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("keyslots", json_pack("[s]", "32"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("keyslots", json_pack("[s]", "1x"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("keyslots", json_pack("[s, s]", "1", "2"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("keyslots", json_pack("[]"), &k, &slot) == -EBADMSG);
        CHECK(parse_with("tpm2-blob", NULL, &k, &slot) == -EBADMSG);
        CHECK(parse_with("kos-pcr-values", json_pack("{s:s}", "7", "xyz"), &k, &slot) == -EBADMSG);
        /* kos-pcr-values only serve messages: absent is fine. */
        CHECK(parse_with("kos-pcr-values", NULL, &k, &slot) == 0 && slot == 1);
        CHECK(parse_with("kos-generation", NULL, &k, &slot) == -EBADMSG);
        CHECK(parse_with("kos-generation", json_integer(-1), &k, &slot) == -EBADMSG);
        CHECK(parse_with("kos-generation", json_string("5"), &k, &slot) == -EBADMSG);
        uint64_t generation;
        CHECK(datafs_token_parse("{", &k, &slot, &generation) == -EBADMSG);
        CHECK(datafs_token_parse("[]", &k, &slot, &generation) == -EBADMSG);
}

static void sample_authorized(struct kos_authorized_key *k) {
        memset(k, 0, sizeof *k);
        k->policy_key_name[0] = 0;
        k->policy_key_name[1] = 0x0b; /* TPM_ALG_SHA256 */
        memset(k->policy_key_name + 2, 0xab, KOS_SHA256_LEN);
        memset(k->storage_key.x, 0x11, 32);
        memset(k->storage_key.y, 0x22, 32);
        k->public_len = 90;
        k->private_len = 160;
        for (unsigned i = 0; i < k->public_len; i++)
                k->public_area[i] = (uint8_t)(i * 3 + 1);
        for (unsigned i = 0; i < k->private_len; i++)
                k->private_area[i] = (uint8_t)(i * 5 + 2);
}

/* A key sealed to the vendor's signed policies (docs/tpm.md) rides in the
 * same systemd-tpm2 token, its blob the KOSSEAL2 bytes, no PCRs of its own
 * (they are the signed policy's), and "kos-scheme" saying so; it parses
 * back to the same object, and every rule of the scheme is checked: a token
 * that mixes the two schemes or names an unknown one is not ours. */
TEST(datafs_token_carries_a_key_sealed_to_signed_policies_and_refuses_mixed_schemes) {
        struct datafs_sealed k = {.authorized = true}, back;
        char buf[DATAFS_TOKEN_MAX];
        int slot = -1;
        uint64_t generation = 0;

        sample_authorized(&k.signed_policy);
        CHECK(datafs_token_format(&k, 2, 9, buf, sizeof buf) == 0);
        json_t *o = json_loads(buf, 0, NULL);
        CHECK(o);
        CHECK(strcmp(json_string_value(json_object_get(o, "type")), "systemd-tpm2") == 0);
        CHECK(strcmp(json_string_value(json_object_get(o, "kos-scheme")), "signed-policy") == 0);
        CHECK(json_array_size(json_object_get(o, "tpm2-pcrs")) == 0);
        CHECK(!json_object_get(o, "kos-pcr-values"));
        CHECK(datafs_token_parse(buf, &back, &slot, &generation) == 0);
        CHECK(back.authorized && slot == 2 && generation == 9);
        CHECK(memcmp(&back.signed_policy, &k.signed_policy, sizeof k.signed_policy) == 0);

        const char *members[] = {"kos-scheme", "tpm2-pcrs", "kos-pcr-values", "tpm2-blob", "tpm2-pcr-bank"};
        json_t *values[] = {json_string("signed-policy-v9"), json_pack("[i, i]", 7, 15),
                            json_pack("{s:s}", "7", "00"), json_string("S09TU0VBTDI="), json_string("sha1")};
        for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
                json_t *m = json_copy(o);
                json_object_set_new(m, members[i], values[i]);
                char *text = json_dumps(m, JSON_COMPACT);
                json_decref(m);
                CHECK(datafs_token_parse(text, &back, &slot, &generation) == -EBADMSG);
                free(text);
        }
        json_decref(o);
}

/* The passphrase is bound to the DataFS generation: the same secret gives
 * another passphrase once a factory reset raised it (golden values from
 * Python's hmac: base64(HMAC-SHA256(secret, "kos-datafs-v1" || u64be(g)))). */
TEST(datafs_passphrase_is_bound_to_the_secret_and_the_generation) {
        uint8_t secret[DATAFS_SECRET_LEN] = {0};
        char pass[DATAFS_PASSPHRASE_MAX];

        secret[0] = 0xfb;
        CHECK(datafs_passphrase(secret, 7, pass) == 44);
        CHECK(strcmp(pass, "27NXEtzOoq1/WvddeBla436OqX48NTz5w9d48aWCYeA=") == 0);
        CHECK(datafs_passphrase(secret, 8, pass) == 44);
        CHECK(strcmp(pass, "g/1xMDM4qQvYS/2tKPlDKwKomIOoonhqPhfKaPu84m0=") == 0);
}

TEST(datafs_mode_comes_from_kos_datafs_and_refuses_unknown_words) {
        enum datafs_mode m = DATAFS_MODE_LUKS2;

        CHECK(datafs_mode_parse(NULL, &m) == 0 && m == DATAFS_MODE_PLAIN);
        CHECK(datafs_mode_parse("luks2", &m) == 0 && m == DATAFS_MODE_LUKS2);
        CHECK(datafs_mode_parse("plain", &m) == 0 && m == DATAFS_MODE_PLAIN);
        CHECK(datafs_mode_parse("LUKS2", &m) == -EINVAL);
        CHECK(datafs_mode_parse("luks2 ", &m) == -EINVAL);
}

/* Node Manager's "datafs: locked" comes from boot.json: the state, the
 * encryption and the reason the System Kernel wrote read back as written,
 * and a boot.json of an init that wrote neither still reads. */
TEST(boot_info_carries_the_datafs_lock_reason_to_node_manager) {
        static struct kos_boot_info in, out;
        char path[512];

        in = (struct kos_boot_info){.version = 1, .rw = "tmpfs", .data_state = "locked", .data_device = "/dev/vda3",
                                    .data_encryption = "luks2", .imagefs_uuid = "4b9c6eaa-1", .imagefs_partuuid = "none",
                                    .imagefs_device = "/dev/vda2"};
        snprintf(in.name, sizeof in.name, "release-1");
        snprintf(in.data_reason, sizeof in.data_reason,
                 "the TPM does not unseal its key: PCR 7 does not match the sealed policy (TPM_RC_POLICY_FAIL)");
        snprintf(path, sizeof path, "%s/boot.json", test_tmpdir());
        CHECK(kos_boot_info_write(path, &in) == 0);
        CHECK(kos_boot_info_read(path, &out) == 0);
        CHECK(strcmp(out.data_state, "locked") == 0 && strcmp(out.data_encryption, "luks2") == 0);
        CHECK(strcmp(out.data_reason, in.data_reason) == 0);
        /* An encryption that is not a word is refused on write. */
        snprintf(in.data_encryption, sizeof in.data_encryption, "LUKS 2");
        CHECK(kos_boot_info_write(path, &in) == -EINVAL);

        const char *old = "{\"manifest\": {\"name\": \"r\", \"id\": \"abababababababababababababababababababababababababababababababab\", "
                          "\"version\": 1}, \"imagefs\": {\"uuid\": \"u-1\", \"partuuid\": \"none\", \"device\": \"/dev/vda2\"}, "
                          "\"components\": [], \"rw\": \"tmpfs\", \"data\": {\"state\": \"mounted\", \"device\": \"/dev/vda3\"}, "
                          "\"timings\": {\"init_start\": 0, \"modules_loaded\": 0, \"imagefs_mounted\": 0, "
                          "\"manifest_verified\": 0, \"layers_mounted\": 0, \"root_assembled\": 0}}";
        CHECK(kos_boot_info_parse(old, strlen(old), &out) == 0);
        CHECK(strcmp(out.data_state, "mounted") == 0 && out.data_encryption[0] == '\0' && out.data_reason[0] == '\0');
}
