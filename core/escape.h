/*
 * escape.h - the one escaper for every string that reaches a person or a
 * JSON reader.  Names from an image (snapshot IDs and names, backing and
 * data-file names, feature-table and bitmap names) and paths from the
 * command line are untrusted bytes: printed raw, ESC ] 0 ; ... BEL retitles
 * a terminal and ESC [ 2 J clears it.  doc/contracts.md "Escaping" states
 * the rules; in short:
 *
 *   human  printable ASCII as is; '\' as "\\"; \n \r \t as "\n" "\r" "\t";
 *          other C0 bytes, DEL and invalid UTF-8 bytes as "\xHH" (one per
 *          byte); valid UTF-8 as is when the locale is UTF-8, except control
 *          and format code points (C1 U+0080..U+009F, U+2028/U+2029, the
 *          bidirectional controls, U+FEFF), which become "\uXXXX"; in any
 *          other locale every non-ASCII code point becomes "\uXXXX" or
 *          "\UXXXXXXXX".
 *   json   valid UTF-8 stays UTF-8 (RFC 8259); '"' and '\' escaped; C0, DEL
 *          and the control/format code points above as "\uXXXX" (\n \r \t
 *          \b \f in their short forms); every byte of invalid UTF-8 becomes
 *          U+FFFD, written "\ufffd" (the raw byte is not kept: a JSON string
 *          can only hold Unicode, and mapping bytes to U+00XX would make an
 *          invalid name look like a valid one).
 *
 * Problem messages are recorded raw (core/problems.c) with every untrusted
 * argument bounded by qc_esc_bound(), and escaped when printed, per format.
 */
#ifndef QC_ESCAPE_H
#define QC_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum qc_esc_form {
	QC_ESC_HUMAN_UTF8,  /* human output, UTF-8 terminal */
	QC_ESC_HUMAN_ASCII, /* human output, any other locale */
	QC_ESC_JSON,        /* the inside of a JSON string (no quotes) */
};

/* Untrusted strings longer than this many bytes are cut in human text. */
#define QC_ESC_NAME_MAX 128

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), with its code
 * point in *cp; 0 if the bytes there are not valid UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF are invalid).
 */
size_t qc_utf8_decode(const unsigned char *s, size_t n, unsigned long *cp);

/* Write n bytes of s to f, escaped for form. */
void qc_esc_write(FILE *f, const char *s, size_t n, enum qc_esc_form form);

/*
 * The escaped form of n bytes of s into dst (always NUL terminated when
 * size > 0).  Returns the full escaped length, like snprintf.
 */
size_t qc_esc_str(char *dst, size_t size, const char *s, size_t n, enum qc_esc_form form);

/*
 * The human form for this process: QC_ESC_HUMAN_UTF8 when the locale
 * (LC_ALL, else LC_CTYPE, else LANG) names UTF-8, else QC_ESC_HUMAN_ASCII.
 */
enum qc_esc_form qc_esc_human_form(void);

/* Escape a NUL-terminated string for people (qc_esc_human_form()). */
void qc_esc_human(FILE *f, const char *s);

/*
 * Escape a NUL-terminated untrusted name for people, cut like
 * qc_esc_bound() when longer than QC_ESC_NAME_MAX bytes.
 */
void qc_esc_human_name(FILE *f, const char *s);

/*
 * printf for one line of human text: the formatted text is escaped as a
 * whole (so every argument is, and the format's own text is plain ASCII
 * that passes unchanged), then a newline is written.
 */
void qc_esc_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Bound an untrusted string for a problem message: s itself when it has at
 * most QC_ESC_NAME_MAX bytes, else its first bytes (cut at a UTF-8
 * boundary) followed by "... (N bytes)" in buf.  The result is raw, not
 * escaped: the report escapes the whole message when it prints it.
 */
#define QC_ESC_BOUND_SIZE (QC_ESC_NAME_MAX + 40)
const char *qc_esc_bound(char buf[QC_ESC_BOUND_SIZE], const char *s);
/*
 * The same for n bytes that need not be NUL terminated (always copied into
 * buf).  A NUL byte among them ends the text kept, and the "(N bytes)" note
 * is added, so the cut is visible.
 */
const char *qc_esc_bound_n(char buf[QC_ESC_BOUND_SIZE], const char *s, size_t n);

#endif
