/* SPDX-License-Identifier: MIT */
/* The Boot Kernel UKI's security version (docs/trust-chain.md, "Boot Kernel
 * updates"): `kos mkboot --security-version N` writes
 * kos.bk_security_version=N into the UKI's signed .cmdline section; the Boot
 * Kernel reads it back from /proc/cmdline, measures it into PCR 14 and holds
 * it against its floor; `kos manifest create --boot-kernel` and Node Manager
 * read it out of the UKI file to check it against the manifest. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tpm.h"
#include "util.h"

#define KOS_BK_SECURITY_VERSION_PARAM "kos.bk_security_version"
/* The ASCII event the Boot Kernel extends into PCR 14: prefix + decimal. */
#define KOS_BK_SECURITY_VERSION_EVENT_PREFIX "kos-bk-security-version="
#define KOS_BK_SECURITY_VERSION_PCR 14
#define KOS_UKI_MAX_SECTIONS 96
#define KOS_UKI_CMDLINE_MAX 4096

/* Finds kos.bk_security_version=N among the space-separated words of a
 * kernel command line. N is strict decimal, 0 to 2^32-1, no sign, no
 * leading zero. Absent: -ENOENT; malformed, or given twice (the kernel
 * would keep the last, a reader might take the first): -EINVAL. */
_kos_must_check_ int kos_bk_security_version_from_cmdline(const char *cmdline, uint32_t *ret);

/* Copies section NAME (".cmdline", at most 8 bytes) of the PE image open at
 * fd into a new NUL-terminated buffer: at most cap bytes, else -EFBIG. A
 * file that is not PE32+ with sane offsets is -ENOEXEC; no such section
 * -ENOENT. Reads untrusted bytes: every offset is checked against the
 * file's size. */
_kos_must_check_ int kos_uki_read_section(int fd, const char *name, size_t cap, char **ret_data, size_t *ret_len);

/* The security version written in the UKI at fd (its .cmdline section):
 * the errors of both functions above. */
_kos_must_check_ int kos_uki_security_version(int fd, uint32_t *ret);

/* --- PCR 14 (docs/tpm.md, "The Boot Kernel security version"): the Boot
 * Kernel, first thing once it has a TPM, extends KOS_BK_SECURITY_VERSION_PCR
 * with the ASCII event "kos-bk-security-version=N" (decimal, no NUL): the
 * SHA-256 bank with SHA-256(event), the SHA-1 bank with SHA-1(event). A UKI
 * without the parameter extends nothing, so PCR 14 stays zero. */
#define KOS_BK_SECURITY_VERSION_EVENT_MAX (sizeof(KOS_BK_SECURITY_VERSION_EVENT_PREFIX) + 10)

/* The event's bytes (NUL-terminated for printing; the NUL is not measured):
 * returns its length. */
size_t kos_bk_security_version_event(uint32_t v, char ret[static KOS_BK_SECURITY_VERSION_EVENT_MAX]);
/* The SHA-256 PCR 14 value after the one extend from reset:
 * SHA-256(32 zero bytes || SHA-256(event)). */
_kos_must_check_ int kos_bk_security_version_expected_pcr(uint32_t v, uint8_t ret_pcr[static KOS_SHA256_LEN]);
_kos_must_check_ int kos_bk_measure_security_version(struct kos_tpm *t, uint32_t v);
