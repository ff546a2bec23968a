/* activity.c - mentions and the activity prompt (pure code, see activity.h). */
#include "activity.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c >= 0x80;
}

int activity_mentions(const char *text, const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return 0;
	for (const char *p = text; *p; p++) {
		if (strncasecmp(p, name, n) != 0)
			continue;
		if ((p == text || !word_byte((unsigned char)p[-1])) &&
		    !word_byte((unsigned char)p[n]))
			return 1;
	}
	return 0;
}

/* Append s to buf[*len..cap), bytes that could drive the terminal as '?';
 * 0, or -1 when it did not fit (nothing appended then). */
static int put(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[(*len)++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[*len] = '\0';
	return 0;
}

char *activity_prompt(char *buf, size_t cap, const char *current,
		      const struct activity_item *items, size_t n)
{
	/* Kept free for the longest ending: the cut marker. */
	static const char cut[] = " [...]> ";
	size_t len = 0, listed = 0, room;
	char item[64];

	if (cap == 0)
		return buf;
	buf[0] = '\0';
	if (cap < sizeof(cut)) {
		if (cap >= 3)
			(void)put(buf, cap, &len, "> ");
		return buf;
	}
	room = cap - (sizeof(cut) - 1);
	if (current)
		(void)put(buf, room, &len, current);
	for (size_t i = 0; i < n; i++) {
		const struct activity_item *it = &items[i];
		size_t mark = len;

		if (it->unread == 0 && !it->mentioned)
			continue;
		snprintf(item, sizeof(item), ":%lu%s", it->unread, it->mentioned ? "!" : "");
		if (put(buf, room, &len, listed ? " " : (len ? " [" : "[")) < 0 ||
		    put(buf, room, &len, it->name) < 0 || put(buf, room, &len, item) < 0) {
			len = mark;
			buf[len] = '\0';
			(void)put(buf, cap, &len, listed ? " ...]> " : (len ? cut : cut + 1));
			return buf;
		}
		listed++;
	}
	(void)put(buf, cap, &len, listed ? "]> " : "> ");
	return buf;
}
