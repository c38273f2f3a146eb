//! Privileged advice in German, French, Spanish, Portuguese and Japanese.
//!
//! A sentence is judged on its lower-cased NFKC form by per-language lexicons rather than
//! by phrases: advice widens access when, in one sentence and one language,
//!
//! * a widening verb (give, grant, open, share, allow) meets a permission word and either a
//!   broad audience or an elevated level ("gebt allen Mitarbeitern Lesezugriff", "donnez
//!   l'accès en écriture à tout le monde", "全員に管理者権限を付与してください");
//! * a making verb meets the word for public with no indefinite article between them
//!   ("haz público el bucket", but not "haz un anuncio público");
//! * a disabling verb meets an authentication control ("desative a autenticação de dois
//!   fatores");
//! * an adding or promoting verb meets a privileged group or role ("füge Bob zur Gruppe der
//!   Administratoren hinzu");
//! * a sharing verb meets a broad audience ("partagez-le avec tout le monde").
//!
//! A negation of the language anywhere in the sentence ("nie", "jamais", "nunca", "não",
//! "決して…ない") clears it, as does a restriction ("nur", "seulement", "solo", "apenas",
//! "のみ") when no broad audience is named. Words are matched whole, by stem, or (for
//! German compounds such as `Schreibzugriff`) as parts of words.

use unicode_normalization::UnicodeNormalization;

use super::super::text::{slice, starts_with_ci};

/// The most characters of a sentence that are judged.
const MAX_CHARS: usize = 480;

/// One language's lexicon. `verbs` are whole words; `stems` match word starts.
struct Lang {
    verbs: &'static [&'static str],
    stems: &'static [&'static str],
    make: &'static [&'static str],
    public: &'static [&'static str],
    add: &'static [&'static str],
    promote: &'static [&'static str],
    disable: &'static [&'static str],
    /// Substrings of the sentence naming an authentication or access control.
    controls: &'static [&'static str],
    /// Substrings of a word naming a permission.
    nouns: &'static [&'static str],
    /// Substrings of a word naming an elevated level or a privileged role.
    elevated: &'static [&'static str],
    /// Word starts of what an audience would be allowed to do ("écrire", "bearbeiten").
    actions: &'static [&'static str],
    /// Words that are a broad audience by themselves.
    audience: &'static [&'static str],
    /// "all": an audience when followed by people, by a permission word, or by nothing.
    all: &'static [&'static str],
    /// Word starts naming people.
    people: &'static [&'static str],
    /// Substrings of the sentence (words joined by single spaces) naming a broad audience.
    phrases: &'static [&'static str],
    articles: &'static [&'static str],
    indefinite: &'static [&'static str],
    negations: &'static [&'static str],
    /// A negation word followed by one of these is not a negation ("nicht nur").
    not_negation: &'static [&'static str],
    restrictions: &'static [&'static str],
}

const ELEVATED_COMMON: [&str; 6] = ["admin", "root", "sudo", "superuser", "owner", "full"];

#[rustfmt::skip]
const DE: Lang = Lang {
    verbs: &["lass", "lasst", "lassen", "gib", "gebt", "geben", "gebe", "gibst", "erteile", "erteilt", "erteilen", "gewähre", "gewährt", "gewähren", "vergib", "vergebt", "vergeben", "räume", "räumt", "räumen", "öffne", "öffnet", "öffnen", "erlaube", "erlaubt", "erlauben", "ermögliche", "ermöglicht", "ermöglichen", "aktiviere", "aktiviert", "aktivieren", "bekommen", "erhalten", "kriegen", "weise", "weist", "zuweisen", "verleihe", "verleiht", "verleihen", "teile", "teilt", "teilen", "schalte", "schaltet", "schalten"],
    stems: &["freigeb", "freischalt", "einräum", "zuweis", "zugesteh", "gestatt"],
    make: &["mach", "macht", "machen", "mache", "setze", "setzt", "setzen", "setz", "stelle", "stellt", "stellen", "stell", "schalte", "schaltet", "schalten", "ändere", "ändert", "ändern"],
    public: &["öffentlich", "public", "öffentlich-lesbar"],
    add: &["füge", "fügt", "fügen", "hinzufügen", "nimm", "nehmt", "nehmen", "aufnehmen", "trage", "tragt", "eintragen", "pack", "packe", "packt"],
    promote: &["befördere", "befördert", "befördern", "ernenne", "ernennt", "ernennen", "mach", "macht", "machen", "mache"],
    disable: &["deaktiviere", "deaktiviert", "deaktivieren", "abschalten", "ausschalten", "entferne", "entfernt", "entfernen", "umgehe", "umgeht", "umgehen", "schalte", "schaltet", "abstellen", "stelle", "stellt", "lösche", "löscht", "löschen"],
    controls: &["authentifizierung", "zwei faktor", "zweifaktor", "2fa", "mfa", "passwortschutz", "kennwortschutz", "firewall", "zugriffskontrolle", "zugriffsschutz", "mehr faktor", "multi faktor", "anmeldepflicht", "sso"],
    nouns: &["zugriff", "zugreif", "zugang", "recht", "berechtigung", "freigabe", "rolle"],
    elevated: &["schreib", "voll", "besitzer", "eigentümer", "verwalt", "administra", "lösch", "bearbeit"],
    actions: &["schreib", "bearbeit", "änder", "lösch", "zugreif", "verwalt", "les", "zugänglich", "freigeb", "freigab"],
    audience: &["jedermann", "jedem", "jeden", "jeder", "öffentlichkeit", "gästen", "gäste", "externen", "externe", "anonym", "anonyme", "anonymen"],
    all: &["alle", "allen"],
    people: &["mitarbeit", "benutzer", "nutzer", "angestellt", "beschäftigt", "kolleg", "mitglied", "person", "leute", "user", "gäst", "extern", "entwickler", "ingenieur", "auftragnehmer", "team", "abteilung"],
    phrases: &["ganze firma", "ganzen firma", "ganze unternehmen", "ganzen unternehmen", "gesamte unternehmen", "gesamten unternehmen", "gesamte firma", "gesamten firma", "ganze welt", "das internet", "alle welt", "ganze organisation", "gesamte belegschaft", "gesamten belegschaft"],
    articles: &["die", "der", "den", "unsere", "unseren"],
    indefinite: &["ein", "eine", "einen", "einem", "einer"],
    negations: &["nicht", "nie", "niemals", "kein", "keine", "keinen", "keinem", "keiner", "keinesfalls", "nirgends", "vermeiden", "vermeide", "verboten", "untersagt", "niemand", "niemandem"],
    not_negation: &["nur"],
    restrictions: &["nur", "ausschließlich", "lediglich"],
};

#[rustfmt::skip]
const FR: Lang = Lang {
    verbs: &["donne", "donnez", "donner", "donnons", "accorde", "accordez", "accorder", "attribue", "attribuez", "attribuer", "octroie", "octroyez", "octroyer", "confère", "conférez", "conférer", "ouvre", "ouvrez", "ouvrir", "autorise", "autorisez", "autoriser", "permets", "permettez", "permettre", "active", "activez", "activer", "délègue", "déléguez", "déléguer", "partage", "partagez", "partager", "offre", "offrez", "offrir", "fournis", "fournissez", "fournir", "assigne", "assignez", "assigner", "laisse", "laissez", "obtenir", "recevoir"],
    stems: &["accord", "attribu", "octroy", "autoris", "partag"],
    make: &["rends", "rendez", "rendre", "rendons", "mets", "mettez", "mettre", "passe", "passez", "passer", "change", "changez", "changer", "bascule", "basculez", "basculer", "configure", "configurez", "configurer", "définis", "définissez", "définir"],
    public: &["public", "publique", "publics", "publiques", "publiquement"],
    add: &["ajoute", "ajoutez", "ajouter", "inclus", "incluez", "inclure", "intègre", "intégrez", "intégrer", "mets", "mettez", "place", "placez"],
    promote: &["promeus", "promouvez", "promouvoir", "nomme", "nommez", "nommer", "élève", "élevez", "élever", "rends", "rendez", "rendre", "fais", "faites"],
    disable: &["désactive", "désactivez", "désactiver", "supprime", "supprimez", "supprimer", "retire", "retirez", "retirer", "coupe", "coupez", "couper", "contourne", "contournez", "contourner", "enlève", "enlevez", "enlever"],
    controls: &["authentification", "2fa", "mfa", "a2f", "mot de passe", "pare feu", "firewall", "contrôle d accès", "contrôles d accès", "sso", "double facteur", "deux facteurs"],
    nouns: &["accès", "acces", "droit", "permission", "autorisation", "privilège", "privilege", "rôle"],
    elevated: &["écriture", "administra", "propriétaire", "total", "complet", "modification", "suppression", "gestion"],
    actions: &["écrire", "modifier", "éditer", "supprimer", "lire", "gérer", "administrer", "accéder", "accessib"],
    audience: &["quiconque", "chacun", "anonymes", "anonyme", "invités", "externes"],
    all: &["tous", "toutes"],
    people: &["employé", "utilisat", "salarié", "membre", "collabor", "personne", "gens", "invité", "extern", "prestat", "développ", "ingénieur", "équipe", "agent", "stagiaire", "consultant"],
    phrases: &["tout le monde", "n importe qui", "le public", "au public", "toute l entreprise", "toute la société", "toute l organisation", "tout internet", "toute la boîte"],
    articles: &["les", "nos", "vos", "des"],
    indefinite: &["un", "une"],
    negations: &["ne", "n", "pas", "jamais", "aucun", "aucune", "ni", "sans", "évitez", "éviter", "interdit", "interdite", "personne"],
    not_negation: &["importe", "seulement"],
    restrictions: &["seulement", "uniquement", "exclusivement"],
};

#[rustfmt::skip]
const ES: Lang = Lang {
    verbs: &["da", "dad", "dar", "dale", "dales", "den", "denle", "denles", "otorga", "otorgad", "otorgar", "otorgue", "otorguen", "concede", "conceded", "conceder", "conceda", "concedan", "asigna", "asignad", "asignar", "asigne", "asignen", "abre", "abrid", "abrir", "abra", "abran", "permite", "permitid", "permitir", "permita", "permitan", "habilita", "habilitar", "habilite", "activa", "activar", "active", "comparte", "compartid", "compartir", "comparta", "compartan", "proporciona", "proporcionar", "ofrece", "ofrecer", "tengan", "reciban", "obtengan"],
    stems: &["otorg", "otórg", "conced", "concéd", "asign", "asígn", "permít", "habilít", "compart"],
    make: &["haz", "haga", "hagan", "hacer", "hazlo", "hazla", "hazlos", "hazlas", "pon", "ponga", "pongan", "poner", "ponlo", "ponla", "cambia", "cambie", "cambiar", "vuelve", "vuelva", "volver", "convierte", "convierta", "convertir", "configura", "configure", "configurar", "deja", "deje", "dejar", "déjalo", "déjala", "establece", "establecer"],
    public: &["público", "pública", "públicos", "públicas", "publico", "publica", "publicos", "publicas", "públicamente"],
    add: &["añade", "añadid", "añadir", "añada", "añadan", "agrega", "agregar", "agregue", "agreguen", "mete", "meter", "incluye", "incluir", "incluya", "suma", "sumar"],
    promote: &["promueve", "promover", "promueva", "nombra", "nombrar", "asciende", "ascender", "haz", "hazlo", "hazla", "convierte", "conviértelo", "conviértela"],
    disable: &["desactiva", "desactivar", "desactive", "desactiven", "deshabilita", "deshabilitar", "deshabilite", "quita", "quitar", "quite", "elimina", "eliminar", "elimine", "apaga", "apagar", "apague", "omite", "omitir", "salta", "saltar", "sáltate"],
    controls: &["autenticación", "autenticacion", "doble factor", "dos factores", "2fa", "mfa", "contraseña", "cortafuegos", "firewall", "control de acceso", "controles de acceso", "sso"],
    nouns: &["acceso", "permiso", "derecho", "privilegio", "rol"],
    elevated: &["escritura", "administra", "propietario", "total", "completo", "edición", "gestión", "dueño"],
    actions: &["escrib", "modifi", "edit", "borr", "elimin", "leer", "lean", "gestion", "administr", "acced", "accesib"],
    audience: &["cualquiera", "anónimos", "anónimo", "invitados", "externos"],
    all: &["todos", "todas"],
    people: &["emplead", "usuari", "miembro", "trabajador", "persona", "colaborador", "invitad", "extern", "contratist", "desarroll", "ingenier", "gente", "personal", "equipo", "becari"],
    phrases: &["todo el mundo", "cualquier persona", "cualquier usuario", "el público", "al público", "toda la empresa", "toda la compañía", "toda la organización", "todo internet", "todo el personal"],
    articles: &["los", "las", "nuestros", "nuestras"],
    indefinite: &["un", "una", "unos", "unas"],
    negations: &["no", "nunca", "jamás", "jamas", "ningún", "ninguna", "ninguno", "ni", "sin", "evite", "evita", "evitar", "prohibido", "nadie"],
    not_negation: &["solo", "sólo"],
    restrictions: &["solo", "sólo", "solamente", "únicamente", "exclusivamente"],
};

#[rustfmt::skip]
const PT: Lang = Lang {
    verbs: &["dê", "dar", "deem", "dá", "dai", "conceda", "concedam", "conceder", "concede", "concedei", "atribua", "atribuam", "atribuir", "atribui", "abra", "abram", "abrir", "abre", "permita", "permitam", "permitir", "permite", "habilite", "habilitar", "habilitem", "ative", "ativar", "ativem", "compartilhe", "compartilhar", "compartilhem", "partilhe", "partilhar", "libere", "liberar", "liberem", "forneça", "fornecer", "ofereça", "oferecer", "outorgue", "outorgar", "tenham", "recebam"],
    stems: &["conced", "atribu", "permit", "habilit", "compartilh", "partilh", "liber", "outorg"],
    make: &["torne", "tornar", "tornem", "torna", "faça", "fazer", "façam", "faz", "deixe", "deixar", "deixa", "mude", "mudar", "altere", "alterar", "coloque", "colocar", "ponha", "pôr", "configure", "configurar", "defina", "definir"],
    public: &["público", "pública", "públicos", "públicas", "publico", "publica", "publicamente", "publicos", "publicas"],
    add: &["adicione", "adicionar", "adicionem", "adiciona", "acrescente", "acrescentar", "inclua", "incluir", "incluam", "coloque", "colocar", "ponha", "bote", "botar"],
    promote: &["promova", "promover", "promovam", "nomeie", "nomear", "eleve", "elevar", "torne", "tornar", "faça"],
    disable: &["desative", "desativar", "desativem", "desabilite", "desabilitar", "remova", "remover", "removam", "retire", "retirar", "desligue", "desligar", "ignore", "ignorar", "contorne", "contornar"],
    controls: &["autenticação", "autenticacao", "dois fatores", "duplo fator", "2fa", "mfa", "senha", "firewall", "controle de acesso", "controlo de acesso", "sso"],
    nouns: &["acesso", "permiss", "direito", "privilégio", "privilegio", "papel", "função"],
    elevated: &["escrita", "administra", "proprietário", "dono", "total", "completo", "gravação", "edição", "gestão"],
    actions: &["escrev", "modifi", "edit", "apag", "exclu", "ler", "leiam", "gerenci", "administr", "acess"],
    audience: &["anônimos", "anónimos", "convidados", "externos"],
    all: &["todos", "todas"],
    people: &["funcion", "usuári", "usuari", "utilizador", "membro", "colaborador", "pessoa", "convidad", "extern", "empregad", "terceir", "desenvolv", "engenheir", "gente", "equipe", "estagiári"],
    phrases: &["todo mundo", "toda a gente", "qualquer um", "qualquer pessoa", "qualquer usuário", "o público", "ao público", "toda a empresa", "toda a companhia", "toda a organização", "toda a internet"],
    articles: &["os", "as", "nossos", "nossas"],
    indefinite: &["um", "uma", "uns", "umas"],
    negations: &["não", "nunca", "jamais", "nenhum", "nenhuma", "nem", "sem", "evite", "evitar", "proibido", "ninguém"],
    not_negation: &["só", "apenas"],
    restrictions: &["apenas", "somente", "exclusivamente"],
};

const LANGS: [&Lang; 4] = [&DE, &FR, &ES, &PT];

/// True when the candidate word itself belongs to one of these languages.
pub(super) fn is_foreign_word(hay: &[u8], pos: usize, word: &[u8]) -> bool {
    // Word starts that no English word has (`acces` alone is French; `access` is English).
    const STEMS: &[&[u8]] = &[
        b"zugriff",
        b"zugreif",
        b"zugang",
        b"berechtigung",
        b"acceso",
        b"acesso",
        b"permiso",
        b"permisso",
        b"derecho",
        b"direito",
        b"authentification",
        b"autentica",
        b"privilegio",
        b"autorisation",
        b"accesib",
        b"freigeb",
        b"freigab",
        b"jedermann",
        b"qualquer",
        b"cualquier",
    ];
    const WHOLE: &[&[u8]] = &[
        b"acces",
        b"droit",
        b"droits",
        b"rechte",
        b"publico",
        b"publica",
        b"publicos",
        b"publicas",
    ];
    // The audience phrases of the other languages, as the combined scan matched them.
    const PHRASES: &[&[u8]] = &[b"tout", b"todo", b"toda", b"n'importe"];
    let full_end = (pos..hay.len().min(pos + 32))
        .find(|&i| {
            !hay.get(i)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b >= 0x80)
        })
        .unwrap_or(hay.len().min(pos + 32));
    let full = slice(hay, pos, full_end.max(pos + word.len()));
    full.iter().any(|&b| b >= 0x80)
        || STEMS.iter().any(|s| starts_with_ci(full, s))
        || WHOLE.iter().any(|w| w.eq_ignore_ascii_case(full))
        || PHRASES.iter().any(|p| starts_with_ci(word, p))
}

/// The last position in `hay[from..to]` showing text of these languages: a Latin letter
/// with an accent (C3 xx), kana or CJK (E3–E9 xx xx), or one of their short function words.
pub(super) fn foreign_signal(hay: &[u8], from: usize, to: usize) -> Option<usize> {
    let region = slice(hay, from, to);
    let mut last = None;
    let mut start = 0;
    for (i, &b) in region.iter().enumerate() {
        if b.is_ascii_alphabetic() {
            continue;
        }
        if b == 0xc3 || (0xe3..=0xe9).contains(&b) {
            last = Some(from + i);
        } else if (2..=6).contains(&(i - start)) && is_function_word(slice(region, start, i)) {
            last = Some(from + start);
        }
        start = i + 1;
    }
    last
}

/// Short function words of German, French, Spanish and Portuguese that English text does
/// not use.
const FUNCTION_WORDS: &[&[u8]] = &[
    b"au", b"aux", b"le", b"les", b"des", b"du", b"avec", b"pour", b"tout", b"tous", b"une", b"el",
    b"los", b"las", b"al", b"del", b"con", b"para", b"todos", b"todas", b"ao", b"aos", b"os",
    b"com", b"zur", b"zum", b"der", b"die", b"das", b"dem", b"und", b"mit", b"auf", b"alle",
    b"allen", b"jeder", b"nicht", b"pas", b"que", b"sur", b"dans", b"em", b"na", b"ist", b"sie",
    b"vous", b"nos", b"seu", b"sua", b"su",
];

/// Per first and last letter of a function word, the lengths it can have (bit per length), so
/// that most English words are turned down by one table look-up.
const FUNCTION_FILTER: [[u8; 26]; 26] = {
    let mut t = [[0u8; 26]; 26];
    let mut i = 0;
    while i < FUNCTION_WORDS.len() {
        let w = FUNCTION_WORDS[i];
        t[(w[0] - b'a') as usize][(w[w.len() - 1] - b'a') as usize] |= 1 << w.len();
        i += 1;
    }
    t
};

/// True for the [`FUNCTION_WORDS`], in any case.
fn is_function_word(w: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (w.first(), w.last()) else {
        return false;
    };
    let (first, last) = (first | 0x20, last | 0x20);
    if !first.is_ascii_lowercase() || !last.is_ascii_lowercase() || w.len() > 7 {
        return false;
    }
    let lens = FUNCTION_FILTER
        .get(usize::from(first - b'a'))
        .and_then(|row| row.get(usize::from(last - b'a')))
        .copied()
        .unwrap_or(0);
    lens & (1 << w.len()) != 0 && FUNCTION_WORDS.iter().any(|f| f.eq_ignore_ascii_case(w))
}

/// Why the sentence `s` widens access, if it does.
pub(super) fn judge(s: &[u8]) -> Option<&'static str> {
    let raw = String::from_utf8_lossy(s);
    let text: String = raw
        .nfkc()
        .take(MAX_CHARS)
        .collect::<String>()
        .to_lowercase();
    if text.chars().any(is_japanese) {
        return japanese(&text);
    }
    let clauses: Vec<Vec<&str>> = text
        .split([',', ';', ':'])
        .map(|c| {
            c.split(|ch: char| !ch.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect()
        })
        .collect();
    let words: Vec<&str> = clauses.iter().flatten().copied().collect();
    let joined = format!(" {} ", words.join(" "));
    LANGS.iter().find_map(|l| {
        // Negation counts in the clause of a verb: "gebt jedem Vollzugriff, dann gibt es
        // keine Tickets mehr" still advises.
        let verb_clauses: Vec<&Vec<&str>> = clauses
            .iter()
            .filter(|c| c.iter().any(|w| l.is_verb(w)))
            .collect();
        if verb_clauses.is_empty() || verb_clauses.iter().all(|c| l.negated(c)) {
            return None;
        }
        judge_lang(l, &words, &joined)
    })
}

impl Lang {
    /// True for a verb of any of this language's rules.
    fn is_verb(&self, w: &str) -> bool {
        [self.verbs, self.make, self.add, self.promote, self.disable]
            .iter()
            .any(|l| l.contains(&w))
            || self.stems.iter().any(|s| w.starts_with(s))
            || ["teil", "partag", "compart", "partilh"]
                .iter()
                .any(|s| w.starts_with(s))
    }

    /// True when the words hold a negation of this language.
    fn negated(&self, words: &[&str]) -> bool {
        words.iter().enumerate().any(|(i, w)| {
            self.negations.contains(w)
                && !words
                    .get(i + 1)
                    .is_some_and(|n| self.not_negation.contains(n))
        })
    }
}

fn is_japanese(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}')
}

fn judge_lang(l: &Lang, words: &[&str], joined: &str) -> Option<&'static str> {
    let is = |list: &[&str], w: &str| list.contains(&w);
    let verb = words
        .iter()
        .position(|w| is(l.verbs, w) || l.stems.iter().any(|s| w.starts_with(s)));
    let noun = words.iter().any(|w| l.nouns.iter().any(|n| w.contains(n)));
    let elevated_in = |w: &str| {
        l.elevated.iter().any(|e| w.contains(e)) || ELEVATED_COMMON.iter().any(|e| w.contains(e))
    };
    let elevated = words.iter().any(|w| elevated_in(w));
    let audience = l.phrases.iter().any(|p| joined.contains(&format!(" {p} ")))
        || words.iter().any(|w| is(l.audience, w))
        || words.iter().enumerate().any(|(i, w)| {
            if !is(l.all, w) {
                return false;
            }
            let mut j = i + 1;
            if words.get(j).is_some_and(|n| is(l.articles, n)) {
                j += 1;
            }
            match words.get(j) {
                None => true,
                Some(n) => {
                    l.people.iter().any(|p| n.starts_with(p))
                        || l.nouns.iter().any(|x| n.contains(x))
                        || elevated_in(n)
                        || is(l.verbs, n)
                        || l.stems.iter().any(|s| n.starts_with(s))
                }
            }
        });
    let restricted = words.iter().any(|w| is(l.restrictions, w));
    let action = words
        .iter()
        .any(|w| l.actions.iter().any(|a| w.starts_with(a)));
    let maker = words.iter().any(|w| is(l.make, w));
    if (verb.is_some() && noun && (audience || (elevated && !restricted)))
        || ((verb.is_some() || maker) && audience && action)
    {
        return Some(if audience {
            "access granted to everyone"
        } else {
            "elevated access granted"
        });
    }
    // "make … public", with no indefinite article between the verb and the word.
    for (i, w) in words.iter().enumerate() {
        if !is(l.make, w) {
            continue;
        }
        let rest = words.get(i + 1..).unwrap_or(&[]);
        if let Some(k) = rest.iter().take(6).position(|x| is(l.public, x)) {
            if !rest.iter().take(k).any(|x| is(l.indefinite, x)) {
                return Some("made public");
            }
        }
    }
    let any = |list: &[&str]| words.iter().any(|w| is(list, w));
    if any(l.disable) && l.controls.iter().any(|c| joined.contains(&format!(" {c}"))) {
        return Some("protection turned off");
    }
    let privileged = words.iter().any(|w| {
        [
            "admin",
            "administra",
            "sudo",
            "root",
            "wheel",
            "superuser",
            "owner",
            "besitzer",
            "eigentümer",
            "propriétaire",
            "propietario",
            "proprietário",
            "dono",
        ]
        .iter()
        .any(|p| w.contains(p))
    });
    if (any(l.add) || any(l.promote)) && privileged && !restricted {
        return Some("made a member of a privileged group");
    }
    let share = words.iter().any(|w| {
        w.starts_with("teil")
            || w.starts_with("partag")
            || w.starts_with("compart")
            || w.starts_with("partilh")
    });
    if share && audience {
        return Some("shared with everyone");
    }
    None
}

fn japanese(t: &str) -> Option<&'static str> {
    #[rustfmt::skip]
    const NEG: &[&str] = &["ない", "ません", "禁止", "決して", "ダメ", "だめ", "避け", "べきでは", "するな", "いけ", "不可", "厳禁", "なかれ", "never", "not"];
    #[rustfmt::skip]
    const AUD: &[&str] = &["全員", "全社員", "全従業員", "全ユーザ", "すべてのユーザ", "全てのユーザ", "誰でも", "だれでも", "誰もが", "すべての人", "全ての人", "みんな", "皆", "外部", "社外", "匿名", "一般", "全社", "全メンバー", "すべてのメンバー", "全てのメンバー", "全スタッフ", "契約者", "全エンジニア", "不特定", "everyone", "all users"];
    #[rustfmt::skip]
    const NOUN: &[&str] = &["権限", "アクセス", "権利", "ロール", "閲覧", "書き込み", "編集"];
    #[rustfmt::skip]
    const ELEV: &[&str] = &["管理者", "管理権限", "書き込み", "編集", "オーナー", "所有者", "フル", "root", "ルート", "admin", "特権", "スーパーユーザ", "sudo"];
    #[rustfmt::skip]
    const VERB: &[&str] = &["付与", "与え", "許可", "追加", "開放", "共有", "割り当て", "割当", "昇格", "渡し", "付け", "持たせ", "あげ", "開け", "解放", "有効", "ようにして", "ようにする", "できるように"];
    #[rustfmt::skip]
    const CONTROL: &[&str] = &["認証", "二要素", "2要素", "二段階", "2段階", "多要素", "mfa", "2fa", "ファイアウォール", "パスワード", "アクセス制御"];
    #[rustfmt::skip]
    const DISABLE: &[&str] = &["無効", "オフ", "解除", "外し", "外す", "削除", "停止", "切っ", "切る", "スキップ", "回避", "なくし"];
    const ONLY: &[&str] = &["のみ", "だけ", "限定"];
    let has = |list: &[&str]| list.iter().any(|w| t.contains(w));
    // Negation counts in the clause of a verb, as in the other languages.
    let verb_clause_free = t.split(['、', ',', '，']).any(|c| {
        VERB.iter()
            .chain(DISABLE)
            .chain(&["公開", "追加", "昇格"])
            .any(|v| c.contains(v))
            && !NEG.iter().any(|n| c.contains(n))
    });
    if !verb_clause_free {
        return None;
    }
    let audience = has(AUD);
    if has(VERB) && has(NOUN) && (audience || (has(ELEV) && !has(ONLY))) {
        return Some(if audience {
            "access granted to everyone"
        } else {
            "elevated access granted"
        });
    }
    let public = [
        "公開して",
        "公開に",
        "公開する",
        "公開しま",
        "公開すれば",
        "公開設定に",
        "一般公開",
        "パブリックに",
        "パブリック設定",
    ];
    if public.iter().any(|p| t.contains(p)) {
        return Some("made public");
    }
    if has(DISABLE) && has(CONTROL) {
        return Some("protection turned off");
    }
    let group = [
        "管理者グループ",
        "管理者ロール",
        "sudoグループ",
        "adminグループ",
        "wheelグループ",
        "sudoers",
        "管理者に",
    ];
    if group.iter().any(|g| t.contains(g))
        && has(&["追加", "入れ", "昇格", "して", "変更"])
        && !has(ONLY)
    {
        return Some("made a member of a privileged group");
    }
    if t.contains("共有") && audience {
        return Some("shared with everyone");
    }
    None
}
