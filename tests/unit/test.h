/* SPDX-License-Identifier: MIT */
/* A minimal test harness: TEST(name) registers a function; CHECK records a
 * failure with file and line and returns from the test. Each test prints
 * "PASS name" or "FAIL name", which tests/run.sh counts. */
#pragma once

#include <errno.h>
#include <stdio.h>

typedef void (*test_fn)(int *failed);
void test_register(const char *name, test_fn fn);

#define TEST(name)                                                              \
        static void test_##name(int *failed_);                                  \
        __attribute__((constructor)) static void register_##name(void) {        \
                test_register(#name, test_##name);                              \
        }                                                                       \
        static void test_##name(int *failed_)

#define CHECK(cond)                                                             \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
                        *failed_ = 1;                                           \
                        return;                                                 \
                }                                                               \
        } while (0)

/* A fresh temporary directory per test; removed by the harness. */
const char *test_tmpdir(void);
