/* SPDX-License-Identifier: MIT */
/* The few TPM 2.0 commands KOS needs, marshalled by hand (see the top of
 * tpm.c for why not tpm2-tss), and the two jobs built on them: the rollback
 * floor in an NV counter, and the measurement of the booted manifest into a
 * PCR. docs/tpm.md is the reference for every constant here.
 *
 * Three layers, each testable alone:
 *   - builders and parsers: pure functions on byte buffers (golden vectors in
 *     tests/unit/test-tpm.c, a fuzzer in tests/fuzz/fuzz_tpm_response.c);
 *   - the transport: one command, one response, over /dev/tpmrm0, /dev/tpm0
 *     or a swtpm server socket (tests);
 *   - the floor and the measurement. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

/* The NV index of the rollback floor: in the owner range (TCG handle
 * registry: 0x01000000-0x013FFFFF), "KO" in its low bytes. */
#define KOS_TPM_FLOOR_INDEX 0x01004B4Fu
/* TPM_NT_COUNTER | TPMA_NV_POLICYWRITE | TPMA_NV_POLICYREAD | TPMA_NV_NO_DA,
 * with the authPolicy kos_tpm_floor_policy_digest() computes: anyone may
 * read it and increment it through that fixed policy, no secret is ever
 * involved (its authValue is never used), nobody can lower it (docs/tpm.md,
 * "Who may increment"). An index whose attributes or policy differ has
 * another public area, so another name: it is not ours. */
#define KOS_TPM_FLOOR_ATTRIBUTES 0x02080018u
/* The first definition (KOS before issue 19): TPM_NT_COUNTER |
 * TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA and no policy, read
 * and incremented with the index's authValue, which is not in the public
 * area: root could define it again with a secret one. Migrated by
 * kos_tpm_floor_provision(). */
#define KOS_TPM_FLOOR_FIRST_ATTRIBUTES 0x02040014u
#define KOS_TPM_NV_WRITTEN 0x20000000u /* TPMA_NV_WRITTEN, set by the TPM */
/* The policy counter holds the floor + 2 (the first definition held the
 * floor + 1): see docs/tpm.md, "Why floor + 2". */
#define KOS_TPM_FLOOR_OFFSET 2u
/* A floor raise adds at most this many increments (one NV write each). */
#define KOS_TPM_FLOOR_MAX_STEP 4096u

/* The PCR the Boot Kernel extends with the manifest it boots (docs/tpm.md,
 * "Which PCR"). */
#define KOS_TPM_PCR 8
#define KOS_TPM_EVENT_PREFIX "kos-manifest:"
#define KOS_TPM_EVENT_LEN (sizeof(KOS_TPM_EVENT_PREFIX) - 1 + KOS_SHA256_LEN)

/* The sealing PCR (docs/tpm.md, "Sealed keys"): the Boot Kernel extends it
 * with the fixed marker below after it has verified the manifest it boots
 * (with the manifest's own event in PCR 8), and the System Kernel's init
 * extends it with the leave event once it has unsealed its keys. A key
 * sealed to "PCR 15 = the marker replayed from reset" is therefore usable
 * only between the two: in the initrd of a System Kernel the Boot Kernel
 * started. Release-independent, unlike PCR 8. */
#define KOS_TPM_SEAL_PCR 15
#define KOS_TPM_MARKER_EVENT "kos-verified-boot"
#define KOS_TPM_LEAVE_EVENT "kos-system-initrd-leave"

#define KOS_TPM_COMMAND_MAX 512
#define KOS_TPM_RESPONSE_MAX 4096 /* TPM2 PC Client: responses fit in 4 KiB */

/* TPM 2.0 constants (TPM 2.0 Library, Part 2). */
#define KOS_TPM_ST_NO_SESSIONS 0x8001
#define KOS_TPM_ST_SESSIONS 0x8002
#define KOS_TPM_CC_NV_UNDEFINE_SPACE 0x00000122u
#define KOS_TPM_CC_NV_DEFINE_SPACE 0x0000012Au
#define KOS_TPM_CC_NV_INCREMENT 0x00000134u
#define KOS_TPM_CC_NV_READ 0x0000014Eu
#define KOS_TPM_CC_NV_READ_PUBLIC 0x00000169u
#define KOS_TPM_CC_PCR_READ 0x0000017Eu
#define KOS_TPM_CC_PCR_EXTEND 0x00000182u
#define KOS_TPM_CC_CREATE_PRIMARY 0x00000131u
#define KOS_TPM_CC_CREATE 0x00000153u
#define KOS_TPM_CC_LOAD 0x00000157u
#define KOS_TPM_CC_UNSEAL 0x0000015Eu
#define KOS_TPM_CC_FLUSH_CONTEXT 0x00000165u
#define KOS_TPM_CC_START_AUTH_SESSION 0x00000176u
#define KOS_TPM_CC_POLICY_PCR 0x0000017Fu
#define KOS_TPM_CC_POLICY_COMMAND_CODE 0x0000016Cu
#define KOS_TPM_CC_POLICY_OR 0x00000171u
#define KOS_TPM_RH_OWNER 0x40000001u
#define KOS_TPM_RH_NULL 0x40000007u
#define KOS_TPM_RS_PW 0x40000009u
#define KOS_TPM_ALG_SHA1 0x0004
#define KOS_TPM_ALG_SHA256 0x000B
#define KOS_TPM_ALG_KEYEDHASH 0x0008
#define KOS_TPM_ALG_ECC 0x0023
#define KOS_TPM_ALG_NULL 0x0010
/* TPM_RC values the sealing code names in messages (format 1 with the
 * parameter/handle/session number masked off: rc & 0xbf). */
#define KOS_TPM_RC_VALUE 0x084
#define KOS_TPM_RC_POLICY_FAIL 0x09D
#define KOS_TPM_RC_INTEGRITY 0x09F
#define KOS_TPM_RC_HANDLE 0x08B
#define KOS_TPM_RC_BAD_AUTH 0x0A2 /* a wrong authValue (password) for the handle */
#define KOS_TPM_RC_NV_SPACE 0x14B /* format 0: no room left in NV memory */
/* Largest blobs kept: a sealed object's TPM2B_PUBLIC and TPM2B_PRIVATE
 * (about 80 and 200 bytes with SHA-256 and 128 bytes of data). */
#define KOS_TPM_BLOB_MAX 512
/* TPM2B_SENSITIVE_DATA: MAX_SYM_DATA of the PC Client profile. */
#define KOS_TPM_SEAL_DATA_MAX 128

/* The public area of an NV index, as NV_ReadPublic returns it. */
struct kos_tpm_nv_public {
        uint32_t index;
        uint16_t name_alg;
        uint32_t attributes;
        uint16_t auth_policy_size;
        uint8_t auth_policy[64]; /* its first auth_policy_size bytes */
        uint16_t data_size;
};

/* --- Builders: the exact command bytes; return the length, or -ENOBUFS.
 * A command on an NV index is authorized by session: KOS_TPM_RS_PW (the
 * empty password: the first definition of the floor counter) or the handle
 * of a policy session (not continued: the TPM flushes it after a success). */
_kos_must_check_ int kos_tpm_build_nv_read_public(uint8_t *buf, size_t size, uint32_t index);
_kos_must_check_ int kos_tpm_build_nv_read(uint8_t *buf, size_t size, uint32_t index, uint32_t session, uint16_t len,
                                           uint16_t offset);
/* Defined by the owner hierarchy (empty owner authorization) with an empty
 * authValue and pub's authPolicy. */
_kos_must_check_ int kos_tpm_build_nv_define_space(uint8_t *buf, size_t size, const struct kos_tpm_nv_public *pub);
_kos_must_check_ int kos_tpm_build_nv_undefine_space(uint8_t *buf, size_t size, uint32_t index);
_kos_must_check_ int kos_tpm_build_nv_increment(uint8_t *buf, size_t size, uint32_t index, uint32_t session);
/* PolicyCommandCode: the session authorizes the command code cc alone. */
_kos_must_check_ int kos_tpm_build_policy_command_code(uint8_t *buf, size_t size, uint32_t session, uint32_t cc);
/* PolicyOR of 2 to 8 SHA-256 branch digests. */
_kos_must_check_ int kos_tpm_build_policy_or(uint8_t *buf, size_t size, uint32_t session,
                                             const uint8_t (*digests)[KOS_SHA256_LEN], size_t n);
/* Extends pcr in the SHA-256 bank with sha256, and in the SHA-1 bank with
 * sha1 unless it is NULL (a TPM ignores digests for banks it has not allocated). */
_kos_must_check_ int kos_tpm_build_pcr_extend(uint8_t *buf, size_t size, unsigned pcr,
                                              const uint8_t sha256[static KOS_SHA256_LEN], const uint8_t *sha1);
_kos_must_check_ int kos_tpm_build_pcr_read(uint8_t *buf, size_t size, unsigned pcr);

/* The commands of sealing (docs/tpm.md, "Sealed keys"). PCR selections are
 * masks of PCRs 0-23 in the SHA-256 bank. */
/* A storage primary key under the owner hierarchy from a fixed template (ECC
 * NIST P-256, AES-128-CFB, restricted decrypt, fixedTPM/fixedParent,
 * noDA): the same template gives the same key on the same TPM, so nothing
 * needs to be persisted. */
_kos_must_check_ int kos_tpm_build_create_primary(uint8_t *buf, size_t size);
/* A sealed data object (KEYEDHASH, fixedTPM|fixedParent|noDA, no
 * userWithAuth: only its policy authorizes it) holding data, under parent. */
_kos_must_check_ int kos_tpm_build_create(uint8_t *buf, size_t size, uint32_t parent, const uint8_t *data,
                                          size_t data_len, const uint8_t policy[static KOS_SHA256_LEN]);
_kos_must_check_ int kos_tpm_build_load(uint8_t *buf, size_t size, uint32_t parent, const uint8_t *private_area,
                                        uint16_t private_len, const uint8_t *public_area, uint16_t public_len);
/* An unsalted, unbound policy session with SHA-256 and the caller's nonce. */
_kos_must_check_ int kos_tpm_build_start_auth_session(uint8_t *buf, size_t size, const uint8_t nonce[static 16]);
/* PolicyPCR with an empty pcrDigest: the TPM takes the PCRs' current values. */
_kos_must_check_ int kos_tpm_build_policy_pcr(uint8_t *buf, size_t size, uint32_t session, uint32_t pcr_mask);
/* Unseal of item, authorized by the policy session (not continued). */
_kos_must_check_ int kos_tpm_build_unseal(uint8_t *buf, size_t size, uint32_t item, uint32_t session);
_kos_must_check_ int kos_tpm_build_flush_context(uint8_t *buf, size_t size, uint32_t handle);

/* --- Parsers. Untrusted input: every length is checked, every byte must be
 * consumed. */

/* The response header and, for a command sent with a password session, the
 * parameter area and the one session in the response. Returns 0 with the
 * response code in *ret_rc and the parameters in *ret_params, *ret_params_len
 * (empty unless *ret_rc is 0), or -EBADMSG for a malformed response. */
_kos_must_check_ int kos_tpm_parse_response(const uint8_t *resp, size_t len, bool sessions, uint32_t *ret_rc,
                                            const uint8_t **ret_params, size_t *ret_params_len);
_kos_must_check_ int kos_tpm_parse_nv_read_public(const uint8_t *p, size_t len, struct kos_tpm_nv_public *ret);
/* NV_Read's parameters holding exactly want bytes. */
_kos_must_check_ int kos_tpm_parse_nv_read(const uint8_t *p, size_t len, uint16_t want, uint8_t *ret_data);
/* PCR_Read's parameters selecting exactly pcr in the SHA-256 bank. */
_kos_must_check_ int kos_tpm_parse_pcr_read(const uint8_t *p, size_t len, unsigned pcr,
                                            uint8_t ret_value[static KOS_SHA256_LEN]);

/* Like kos_tpm_parse_response() for a command whose response carries one
 * handle (CreatePrimary, Load, StartAuthSession): it comes before the
 * parameter area. */
_kos_must_check_ int kos_tpm_parse_response_handle(const uint8_t *resp, size_t len, bool sessions, uint32_t *ret_rc,
                                                   uint32_t *ret_handle, const uint8_t **ret_params,
                                                   size_t *ret_params_len);
/* CreatePrimary's parameters: outPublic, creationData, creationHash,
 * creationTicket, name, each size-checked and nothing after. */
_kos_must_check_ int kos_tpm_parse_create_primary(const uint8_t *p, size_t len);
/* Create's parameters: the new object's private and public areas (TPM2B
 * bodies, without their size fields) copied out, the creation data checked
 * and skipped. */
_kos_must_check_ int kos_tpm_parse_create(const uint8_t *p, size_t len, uint8_t ret_private[static KOS_TPM_BLOB_MAX],
                                          uint16_t *ret_private_len, uint8_t ret_public[static KOS_TPM_BLOB_MAX],
                                          uint16_t *ret_public_len);
/* Load's parameters: the object's name. */
_kos_must_check_ int kos_tpm_parse_load(const uint8_t *p, size_t len);
/* StartAuthSession's parameters: nonceTPM of 16 to 64 bytes. */
_kos_must_check_ int kos_tpm_parse_start_auth_session(const uint8_t *p, size_t len);
/* Unseal's parameters: outData, at most KOS_TPM_SEAL_DATA_MAX bytes. */
_kos_must_check_ int kos_tpm_parse_unseal(const uint8_t *p, size_t len, uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX],
                                          size_t *ret_len);

/* The name of the TPM_RC an error response carries ("TPM_RC_POLICY_FAIL"),
 * or "TPM_RC_0x..." in buf for one not named here. */
const char *kos_tpm_rc_name(uint32_t rc, char *buf, size_t size);
/* rc says the authorization given for a handle was wrong (TPM_RC_BAD_AUTH,
 * or TPM_RC_AUTH_FAIL where dictionary-attack protection applies): for the
 * owner hierarchy, its owner has set a password. */
bool kos_tpm_rc_is_bad_auth(uint32_t rc);

/* The negative errno a TPM response code means here: -ENOENT (no such
 * handle), -ENODATA (NV index never written), -EEXIST (NV index already
 * defined), -EACCES (authorization or hierarchy refused), -ENOSPC (NV
 * memory full), -EAGAIN (retry), -EPROTO (anything else). */
_kos_must_check_ int kos_tpm_rc_to_errno(uint32_t rc);

/* --- The transport. */
struct kos_tpm {
        int fd;
        char path[108];
        uint32_t last_rc; /* of the last command, for messages; 0 when it got no TPM response */
        uint32_t floor_index; /* 0: the manifest floor; set only inside kos_tpm_bk_floor_*() */
};

/* The TPM to use: NULL or "auto" selects /dev/tpmrm0, else /dev/tpm0, else
 * none; "none" never uses one; another value is the path of a TPM character
 * device or a swtpm server unix socket (tests). Process-wide, for programs:
 * the kos tool sets it from $KOS_TPM. */
void kos_tpm_select(const char *spec);
/* Opens the selected TPM: -ENODEV when there is none (not an error: the
 * ImageFS floor alone is used), another negative errno when it cannot be
 * opened. */
_kos_must_check_ int kos_tpm_open(struct kos_tpm *ret);
void kos_tpm_close(struct kos_tpm *t);
/* Sends cmd, receives the whole response (retrying while the TPM says
 * RETRY/YIELDED/TESTING), parses its header: 0 with *ret_rc and the
 * parameters (inside resp), or a negative errno. */
_kos_must_check_ int kos_tpm_transact(struct kos_tpm *t, const uint8_t *cmd, size_t cmd_len, bool sessions,
                                      uint8_t resp[static KOS_TPM_RESPONSE_MAX], uint32_t *ret_rc,
                                      const uint8_t **ret_params, size_t *ret_params_len);

/* Whether an index's public area (NV_ReadPublic) is exactly want, but for
 * TPMA_NV_WRITTEN, which the TPM sets: how KOS tells its own indexes from
 * one defined at the same handle by someone else. */
bool kos_tpm_nv_public_is(const struct kos_tpm_nv_public *have, const struct kos_tpm_nv_public *want);

/* --- Commands: 0 or a negative errno (kos_tpm_rc_to_errno for TPM errors). */
_kos_must_check_ int kos_tpm_nv_read_public(struct kos_tpm *t, uint32_t index, struct kos_tpm_nv_public *ret);
_kos_must_check_ int kos_tpm_nv_read_u64(struct kos_tpm *t, uint32_t index, uint32_t session, uint64_t *ret);
_kos_must_check_ int kos_tpm_nv_define_space(struct kos_tpm *t, const struct kos_tpm_nv_public *pub);
_kos_must_check_ int kos_tpm_nv_undefine_space(struct kos_tpm *t, uint32_t index);
_kos_must_check_ int kos_tpm_nv_increment(struct kos_tpm *t, uint32_t index, uint32_t session);
_kos_must_check_ int kos_tpm_policy_command_code(struct kos_tpm *t, uint32_t session, uint32_t cc);
_kos_must_check_ int kos_tpm_policy_or(struct kos_tpm *t, uint32_t session, const uint8_t (*digests)[KOS_SHA256_LEN],
                                       size_t n);
_kos_must_check_ int kos_tpm_pcr_extend(struct kos_tpm *t, unsigned pcr, const uint8_t sha256[static KOS_SHA256_LEN],
                                        const uint8_t *sha1);
_kos_must_check_ int kos_tpm_pcr_read(struct kos_tpm *t, unsigned pcr, uint8_t ret_value[static KOS_SHA256_LEN]);
/* Sealing (t->last_rc holds the TPM's code of a refusal). */
_kos_must_check_ int kos_tpm_create_primary(struct kos_tpm *t, uint32_t *ret_handle);
_kos_must_check_ int kos_tpm_create(struct kos_tpm *t, uint32_t parent, const uint8_t *data, size_t data_len,
                                    const uint8_t policy[static KOS_SHA256_LEN],
                                    uint8_t ret_private[static KOS_TPM_BLOB_MAX], uint16_t *ret_private_len,
                                    uint8_t ret_public[static KOS_TPM_BLOB_MAX], uint16_t *ret_public_len);
_kos_must_check_ int kos_tpm_load(struct kos_tpm *t, uint32_t parent, const uint8_t *private_area, uint16_t private_len,
                                  const uint8_t *public_area, uint16_t public_len, uint32_t *ret_handle);
_kos_must_check_ int kos_tpm_start_policy_session(struct kos_tpm *t, uint32_t *ret_handle);
_kos_must_check_ int kos_tpm_policy_pcr(struct kos_tpm *t, uint32_t session, uint32_t pcr_mask);
_kos_must_check_ int kos_tpm_unseal_object(struct kos_tpm *t, uint32_t item, uint32_t session,
                                           uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len);
int kos_tpm_flush_context(struct kos_tpm *t, uint32_t handle);
/* Extends pcr with SHA-256 and SHA-1 of event (the SHA-256 bank alone on a
 * TPM without SHA-1), as the manifest's measurement is. */
_kos_must_check_ int kos_tpm_extend_event(struct kos_tpm *t, unsigned pcr, const void *event, size_t len);

/* --- The rollback floor in the TPM (docs/tpm.md, "The floor counter").
 * No secret is ever needed to read or raise it: the counter is read and
 * incremented through its fixed policy (the first definition, while it
 * lasts, with the empty password). Only defining it, and migrating the
 * first definition, use the owner hierarchy, with an empty authorization.
 * Each call says in ret_message what it did or, on failure, why no floor
 * can be trusted: a TPM that is there but whose counter cannot be read or
 * raised is tampering (or a failing TPM), and nothing boots. */

/* The counter's authPolicy: PolicyOR of PolicyCommandCode(NV_Read) and
 * PolicyCommandCode(NV_Increment), those two branches in that order. */
_kos_must_check_ int kos_tpm_floor_policy_digest(uint8_t ret_digest[static KOS_SHA256_LEN]);

/* The floor the counter holds: 0, or
 *   -ENOENT  no index at KOS_TPM_FLOOR_INDEX (never provisioned, or deleted);
 *   -ENODATA the counter was never incremented;
 *   -EBADMSG the index there is neither the KOS counter nor its first
 *            definition (attributes, nameAlg, authPolicy or size differ);
 *   -EACCES  the TPM refuses to read it (the first definition defined again
 *            with a secret authValue);
 *   another negative errno: the TPM failed. */
_kos_must_check_ int kos_tpm_floor_read(struct kos_tpm *t, uint32_t *ret_floor, char *ret_message,
                                        size_t message_size);
/* Makes the counter exist and hold a floor (the Boot Kernel, at every boot):
 *   absent: defines it and increments it once. The first increment of a
 *     counter makes it one more than the largest value any counter of this
 *     TPM ever held, so a counter deleted and defined again comes back
 *     above its old floor;
 *   ours, never incremented: increments it once;
 *   the first definition: migrated, its floor kept (docs/tpm.md,
 *     "Migrating the first definition"); kept as it is when the owner
 *     hierarchy has a password, which is as safe;
 *   anything else: -EBADMSG, never replaced (tampering: fail closed).
 * ret_message says what was done ("" when nothing). */
_kos_must_check_ int kos_tpm_floor_provision(struct kos_tpm *t, char *ret_message, size_t message_size);
/* Increments the counter until the floor is value, defining it first when
 * absent (the first definition is raised in place: only provisioning
 * migrates): -ERANGE when the floor is already higher, -E2BIG when that
 * takes more than KOS_TPM_FLOOR_MAX_STEP increments (nothing is
 * incremented then), else as kos_tpm_floor_read(). */
_kos_must_check_ int kos_tpm_floor_raise(struct kos_tpm *t, uint32_t value, char *ret_message, size_t message_size);

/* --- The Boot Kernel floor (docs/tpm.md, "The Boot Kernel floor"): a second
 * counter, at KOS_TPM_BK_FLOOR_INDEX, defined, read and raised exactly as the
 * manifest floor above (same attributes, same fixed policy, floor + 2); it
 * never had a first definition, so one found there is tampering. It holds
 * the lowest Boot Kernel security version that may run: the Boot Kernel
 * reads it, Node Manager raises it when it blesses a new UKI. */
#define KOS_TPM_BK_FLOOR_INDEX 0x01004B42u /* "KB" */
_kos_must_check_ int kos_tpm_bk_floor_read(struct kos_tpm *t, uint32_t *ret_floor, char *ret_message, size_t message_size);
_kos_must_check_ int kos_tpm_bk_floor_provision(struct kos_tpm *t, char *ret_message, size_t message_size);
_kos_must_check_ int kos_tpm_bk_floor_raise(struct kos_tpm *t, uint32_t value, char *ret_message, size_t message_size);

/* --- The measurement of the booted manifest (docs/tpm.md, "Measured boot").
 * The event is "kos-manifest:" followed by the 32 bytes of the manifest id;
 * each bank is extended with its hash of the event. */
void kos_tpm_manifest_event(const uint8_t id[static KOS_SHA256_LEN], uint8_t ret_event[static KOS_TPM_EVENT_LEN]);
_kos_must_check_ int kos_tpm_manifest_event_digest(const uint8_t id[static KOS_SHA256_LEN],
                                                   uint8_t ret_digest[static KOS_SHA256_LEN]);
/* The SHA-256 PCR value after extending a zero PCR with the event:
 * SHA-256(32 zero bytes || SHA-256(event)). */
_kos_must_check_ int kos_tpm_manifest_expected_pcr(const uint8_t id[static KOS_SHA256_LEN],
                                                   uint8_t ret_pcr[static KOS_SHA256_LEN]);
/* Extends KOS_TPM_PCR with the manifest's event (SHA-256 and SHA-1 banks),
 * then KOS_TPM_SEAL_PCR with KOS_TPM_MARKER_EVENT: the Boot Kernel calls it
 * once, after verifying the manifest, just before the kexec. */
_kos_must_check_ int kos_tpm_measure_manifest(struct kos_tpm *t, const uint8_t id[static KOS_SHA256_LEN]);
/* Reads a SHA-256 PCR through sysfs (/sys/class/tpm/tpm0/pcr-sha256/N,
 * Linux 5.12 and later), for a stage that has no business sending commands. */
_kos_must_check_ int kos_tpm_sysfs_pcr_read(unsigned pcr, uint8_t ret_value[static KOS_SHA256_LEN]);
