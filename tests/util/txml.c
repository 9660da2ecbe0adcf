/* tests/util/txml — see txml.h. */
#include "txml.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int txml_check(const char *s, char *why, size_t cap)
{
	char stack[64][64];
	int depth = 0, roots = 0;
	size_t i = 0, n = strlen(s);

#define BAD(...) do { snprintf(why, cap, __VA_ARGS__); return -1; } while (0)
#define NAMECH(c) (isalnum((unsigned char)(c)) || (c) == '_' || (c) == ':' || (c) == '-' || (c) == '.')
	while (i < n) {
		char c = s[i];
		if (c == '<') {
			if (!strncmp(s + i, "<?", 2)) {
				const char *e = strstr(s + i, "?>");
				if (!e)
					BAD("unterminated <? at %zu", i);
				i = (size_t)(e - s) + 2;
			} else if (!strncmp(s + i, "<!--", 4)) {
				const char *e = strstr(s + i + 4, "-->");
				if (!e)
					BAD("unterminated comment at %zu", i);
				i = (size_t)(e - s) + 3;
			} else if (!strncmp(s + i, "<!DOCTYPE", 9)) {
				const char *e = strchr(s + i, '>');
				if (!e || roots || depth)
					BAD("misplaced DOCTYPE at %zu", i);
				i = (size_t)(e - s) + 1;
			} else if (s[i + 1] == '/') {
				size_t k = 0;
				char name[64];
				i += 2;
				while (i < n && NAMECH(s[i]) && k < 63)
					name[k++] = s[i++];
				name[k] = '\0';
				while (i < n && isspace((unsigned char)s[i]))
					i++;
				if (s[i] != '>')
					BAD("bad end tag </%s at %zu", name, i);
				i++;
				if (!depth || strcmp(stack[depth - 1], name))
					BAD("</%s> closes <%s> at %zu", name, depth ? stack[depth - 1] : "(nothing)", i);
				if (--depth == 0)
					roots++;
			} else {
				size_t k = 0;
				char name[64];
				bool self = false;
				i++;
				if (!isalpha((unsigned char)s[i]) && s[i] != '_')
					BAD("stray '<' at %zu", i - 1);
				while (i < n && NAMECH(s[i]) && k < 63)
					name[k++] = s[i++];
				name[k] = '\0';
				for (;;) {
					bool sp = false;
					while (i < n && isspace((unsigned char)s[i])) {
						i++;
						sp = true;
					}
					if (s[i] == '>') {
						i++;
						break;
					}
					if (s[i] == '/' && s[i + 1] == '>') {
						i += 2;
						self = true;
						break;
					}
					if (!sp || !NAMECH(s[i]))
						BAD("bad attribute in <%s> at %zu", name, i);
					while (i < n && NAMECH(s[i]))
						i++;
					if (s[i] != '=' || (s[i + 1] != '"' && s[i + 1] != '\''))
						BAD("unquoted attribute in <%s> at %zu", name, i);
					{
						char q = s[i + 1];
						i += 2;
						while (i < n && s[i] != q) {
							if (s[i] == '<')
								BAD("'<' in an attribute of <%s> at %zu", name, i);
							i++;
						}
						if (i >= n)
							BAD("unterminated attribute in <%s>", name);
						i++;
					}
				}
				if (roots)
					BAD("second root element <%s> at %zu", name, i);
				if (self) {
					if (!depth)
						roots++;
				} else {
					if (depth == 64)
						BAD("nesting too deep at %zu", i);
					snprintf(stack[depth++], sizeof stack[0], "%s", name);
				}
			}
			continue;
		}
		if (c == '&') {
			static const char *const ents[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
			bool ok = false;
			for (int k = 0; k < 5 && !ok; k++)
				ok = !strncmp(s + i, ents[k], strlen(ents[k]));
			if (!ok && s[i + 1] == '#') {
				size_t k = i + 2;
				bool hex = s[k] == 'x';
				k += hex;
				while (k < n && (hex ? isxdigit((unsigned char)s[k]) : isdigit((unsigned char)s[k])))
					k++;
				ok = k > i + 2 + hex && s[k] == ';';
			}
			if (!ok)
				BAD("bad entity at %zu", i);
		} else if (!depth && !isspace((unsigned char)c)) {
			BAD("text outside the root element at %zu", i);
		}
		i++;
	}
	if (depth)
		BAD("<%s> never closed", stack[depth - 1]);
	if (roots != 1)
		BAD("%d root elements", roots);
	return 0;
#undef BAD
#undef NAMECH
}
