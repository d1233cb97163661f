import sys
sys.path.insert(0,'src')
from textopia.text import count_subjects,misspelled,count_words,tokenize,KnownWords
train=[l.rstrip('\n') for l in open('data/sd/train.txt',encoding='utf-8')]
subs=count_subjects(train); wc=count_words(train)
kw=KnownWords.load('src/textopia/assets/default/known_words.txt')
d={s:c for s,c in subs.items() if not any(misspelled(w,wc) for w in tokenize(s)) and all(w in kw.words for w in tokenize(s))}
print(len(d), sum(1 for c in d.values() if c>=3))
open(sys.argv[1],'w',encoding='utf-8').write("".join(f"{s}\t{c}\n" for s,c in sorted(d.items())))
