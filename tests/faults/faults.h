/*
 * faults.h - TEST-ONLY fault injection for build/test/qcow2fsck-faults
 * (Makefile).  core/io.c calls these hooks only when it is compiled with
 * -DQC_FAULT_INJECTION, which no production build does: build/qcow2fsck
 * and build/san/qcow2fsck contain neither the hooks nor the variable names
 * (tests/images/repair-crash.sh checks that with strings(1)).
 */
#ifndef QC_FAULTS_H
#define QC_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

struct qc_io;

/* Exit status of a simulated crash. */
#define QC_FAULT_CRASH_EXIT 99

/* An image was opened for writing: arm the faults the environment asks for. */
void qc_fault_attach(struct qc_io *io);
/* A write to io succeeded (io->writes_done counts it). */
void qc_fault_after_write(struct qc_io *io);
/* io was opened from path (any image, read-only or not). */
void qc_fault_open(const struct qc_io *io, const char *path);
/* Whether reading [off, off+len) of io must fail with EIO. */
bool qc_fault_read_fails(const struct qc_io *io, uint64_t off, uint64_t len);
/* [off, off+len) of io was mapped (qc_io_map). */
void qc_fault_after_map(struct qc_io *io, uint64_t off, uint64_t len);

#endif
