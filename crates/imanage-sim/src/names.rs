//! Name pools and the spelling helpers the firm generator builds logins and emails from.
//!
//! The pools mix plain ASCII names with names that carry diacritics or non-Latin-1 letters, as a
//! European or global law firm's directory does. Every non-ASCII letter used here has an entry in
//! [`fold`], which a unit test checks, so the ASCII spelling of every name is well defined.

/// Offices (slug for the customer id, display name), in the order databases are created:
/// `acme-london` is always the first database.
pub(crate) const OFFICES: &[(&str, &str)] = &[
    ("london", "London"),
    ("newyork", "New York"),
    ("paris", "Paris"),
    ("frankfurt", "Frankfurt"),
    ("hongkong", "Hong Kong"),
    ("singapore", "Singapore"),
    ("sydney", "Sydney"),
    ("chicago", "Chicago"),
    ("toronto", "Toronto"),
    ("dubai", "Dubai"),
    ("tokyo", "Tokyo"),
    ("madrid", "Madrid"),
    ("milan", "Milan"),
    ("brussels", "Brussels"),
    ("amsterdam", "Amsterdam"),
    ("dublin", "Dublin"),
    ("edinburgh", "Edinburgh"),
    ("manchester", "Manchester"),
    ("boston", "Boston"),
    ("washington", "Washington"),
    ("sanfrancisco", "San Francisco"),
    ("losangeles", "Los Angeles"),
    ("houston", "Houston"),
    ("saopaulo", "São Paulo"),
    ("mumbai", "Mumbai"),
    ("shanghai", "Shanghai"),
    ("seoul", "Seoul"),
    ("stockholm", "Stockholm"),
    ("warsaw", "Warsaw"),
    ("munich", "Munich"),
    ("zurich", "Zürich"),
    ("geneva", "Geneva"),
    ("luxembourg", "Luxembourg"),
    ("johannesburg", "Johannesburg"),
    ("mexicocity", "Mexico City"),
    ("oslo", "Oslo"),
    ("copenhagen", "Copenhagen"),
    ("vienna", "Vienna"),
    ("prague", "Prague"),
    ("lisbon", "Lisbon"),
];

/// Telephone prefixes, one per office above (cycled for later databases).
pub(crate) const PHONE_PREFIXES: &[&str] = &[
    "+44 20 7946",
    "+1 212 555",
    "+33 1 7098",
    "+49 69 2547",
    "+852 2960",
    "+65 6232",
    "+61 2 9021",
    "+1 312 555",
    "+1 416 555",
    "+971 4 365",
    "+81 3 4578",
    "+34 91 788",
    "+39 02 8088",
    "+32 2 808",
    "+31 20 808",
    "+353 1 906",
    "+44 131 496",
    "+44 161 496",
    "+1 617 555",
    "+1 202 555",
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "John",
    "Jane",
    "James",
    "Julia",
    "Joan",
    "Jack",
    "Jessica",
    "Joseph",
    "Judith",
    "Julian",
    "Mary",
    "Michael",
    "Margaret",
    "Mark",
    "Martha",
    "Matthew",
    "Megan",
    "Mohammed",
    "Maria",
    "Sarah",
    "Samuel",
    "Sophie",
    "Simon",
    "Susan",
    "Stephen",
    "Sandra",
    "Sean",
    "Sonia",
    "David",
    "Daniel",
    "Diana",
    "Deborah",
    "Dominic",
    "Dylan",
    "Anna",
    "Andrew",
    "Alice",
    "Adam",
    "Amelia",
    "Anthony",
    "Amy",
    "Arjun",
    "Robert",
    "Rachel",
    "Richard",
    "Rebecca",
    "Ryan",
    "Rosa",
    "Emma",
    "Edward",
    "Elizabeth",
    "Ethan",
    "Eleanor",
    "Emily",
    "Thomas",
    "Teresa",
    "Timothy",
    "Tara",
    "Peter",
    "Paul",
    "Patricia",
    "Priya",
    "Philip",
    "Paula",
    "Charles",
    "Catherine",
    "Christopher",
    "Claire",
    "Chloe",
    "Connor",
    "William",
    "Wendy",
    "Laura",
    "Lucy",
    "Liam",
    "Louise",
    "Lars",
    "Hannah",
    "Henry",
    "Helen",
    "Harry",
    "Hiroshi",
    "Kevin",
    "Karen",
    "Katherine",
    "Kenji",
    "Klaus",
    "Nicholas",
    "Natalie",
    "Nina",
    "Noah",
    "Olivia",
    "Oliver",
    "Oscar",
    "George",
    "Grace",
    "Gemma",
    "Gareth",
    "Fiona",
    "Frank",
    "Isabel",
    "Ian",
    "Victoria",
    "Vikram",
    "Benjamin",
    "Beatrice",
    "Brian",
    "Wei",
    "Yuki",
    "Zara",
    // With diacritics or letters outside ASCII.
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Chloé",
    "Renée",
    "André",
    "Björn",
    "Sinéad",
    "Siobhán",
    "François",
    "Jürgen",
    "Małgorzata",
    "Ana María",
    "Noémie",
    "Élodie",
    "Mónica",
    "Ramón",
    "Jörg",
    "Åsa",
    "Dáithí",
    "Iñaki",
    "Tomáš",
    "Zoltán",
    "Hélène",
    "Thị",
    "Ágnes",
    "Çağla",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Taylor",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Walker",
    "Wright",
    "Robinson",
    "Thompson",
    "White",
    "Hughes",
    "Edwards",
    "Green",
    "Hall",
    "Wood",
    "Harris",
    "Lewis",
    "Martin",
    "Jackson",
    "Clarke",
    "Clark",
    "Turner",
    "Hill",
    "Scott",
    "Cooper",
    "Morris",
    "Ward",
    "Moore",
    "King",
    "Watson",
    "Baker",
    "Harrison",
    "Morgan",
    "Patel",
    "Young",
    "Allen",
    "Mitchell",
    "James",
    "Anderson",
    "Phillips",
    "Lee",
    "Bell",
    "Parker",
    "Davis",
    "Miller",
    "Garcia",
    "Rodriguez",
    "Martinez",
    "Lopez",
    "Gonzalez",
    "Kim",
    "Chen",
    "Wang",
    "Li",
    "Zhang",
    "Singh",
    "Kumar",
    "Shah",
    "Khan",
    "Ahmed",
    "Ali",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Dubois",
    "Moreau",
    "Laurent",
    "Bernard",
    "Rossi",
    "Russo",
    "Bianchi",
    "Romano",
    "Jansen",
    "de Vries",
    "van Dijk",
    "Bakker",
    "Nielsen",
    "Hansen",
    "Larsen",
    "Andersen",
    "Johansson",
    "Karlsson",
    "Nowak",
    "Kowalski",
    "Murphy",
    "Kelly",
    "O'Brien",
    "O'Neill",
    "Byrne",
    "Ryan",
    "Walsh",
    "McCarthy",
    "Doyle",
    "Campbell",
    "Stewart",
    "MacDonald",
    "Reid",
    "Fraser",
    "Cohen",
    "Levi",
    "Goldberg",
    "Silva",
    "Santos",
    "Ferreira",
    "Pereira",
    "Costa",
    "Oliveira",
    "Ng",
    "Wong",
    "Tan",
    "Lim",
    "Doe",
    "Fox",
    "Stone",
    "Price",
    "Bennett",
    "Gray",
    "Fisher",
    "Hart",
    "Knight",
    "Lane",
    // With diacritics or letters outside ASCII.
    "Müller",
    "Ó Briain",
    "Nguyễn",
    "Jørgensen",
    "Łukasiewicz",
    "Wójcik",
    "Gómez",
    "Pérez",
    "Sánchez",
    "Hernández",
    "Lefèvre",
    "Bélanger",
    "Öztürk",
    "Çelik",
    "Dvořák",
    "Novák",
    "Kovačević",
    "Åberg",
    "Sørensen",
    "Ní Bhriain",
    "Ó Súilleabháin",
    "Schröder",
    "Krüger",
    "Weiß",
    "Zieliński",
    "Lewandowski",
    "Núñez",
    "Trần",
    "Lê",
    "Giménez",
];

/// Client companies, used for external users' email domains and for matter names.
pub(crate) const CLIENTS: &[(&str, &str)] = &[
    ("Globex", "globex.com"),
    ("Initech", "initech.com"),
    ("Umbrella", "umbrella-corp.com"),
    ("Stark Industries", "starkindustries.com"),
    ("Wayne Enterprises", "wayne-enterprises.com"),
    ("Hooli", "hooli.com"),
    ("Wonka", "wonka.co.uk"),
    ("Tyrell", "tyrell.com"),
    ("Cyberdyne", "cyberdyne.io"),
    ("Vandelay", "vandelay-industries.com"),
    ("Soylent", "soylent.com"),
    ("Massive Dynamic", "massivedynamic.com"),
    ("Oscorp", "oscorp.com"),
    ("Aperture", "aperture-science.com"),
    ("Duff", "duff-brewing.com"),
    ("Gringotts", "gringotts.co.uk"),
];

/// Departments: the legal practices (most people) and business services.
pub(crate) const DEPARTMENTS: &[(&str, f64)] = &[
    ("Litigation", 18.0),
    ("Corporate", 16.0),
    ("Banking & Finance", 10.0),
    ("Real Estate", 9.0),
    ("Employment", 6.0),
    ("Intellectual Property", 6.0),
    ("Tax", 5.0),
    ("Competition", 3.0),
    ("Private Client", 3.0),
    ("Restructuring", 3.0),
    ("IT", 5.0),
    ("Finance", 4.0),
    ("Human Resources", 3.0),
    ("Knowledge Management", 2.0),
    ("Business Development", 3.0),
    ("Records", 2.0),
    ("Facilities", 2.0),
];

/// Job titles with their weight and the role group they belong to (if any).
pub(crate) const TITLES: &[(&str, f64, Option<&str>)] = &[
    ("Partner", 12.0, Some("Partners")),
    ("Managing Partner", 0.3, Some("Partners")),
    ("Counsel", 5.0, Some("Counsel")),
    ("Senior Associate", 12.0, Some("Associates")),
    ("Associate", 22.0, Some("Associates")),
    ("Trainee Solicitor", 6.0, Some("Trainees")),
    ("Paralegal", 9.0, Some("Paralegals")),
    ("Legal Secretary", 10.0, Some("Secretaries")),
    ("Practice Support Lawyer", 2.0, None),
    ("IT Analyst", 3.0, None),
    ("Records Clerk", 2.0, None),
    ("Business Services Manager", 3.0, None),
    ("Finance Officer", 2.0, None),
    ("Receptionist", 1.5, None),
];

/// Role groups, in the order they are created.
pub(crate) const ROLE_GROUPS: &[&str] = &[
    "Partners",
    "Counsel",
    "Associates",
    "Trainees",
    "Paralegals",
    "Secretaries",
];

/// Local parts of shared mailboxes (`reception@acme.com`).
pub(crate) const SHARED_MAILBOXES: &[&str] = &[
    "reception",
    "secretaries",
    "docketing",
    "records",
    "facilities",
    "helpdesk",
    "switchboard",
    "mailroom",
    "conflicts",
    "billing",
];

/// Code names for projects and deals (matter groups).
pub(crate) const CODENAMES: &[&str] = &[
    "Falcon", "Aurora", "Granite", "Juniper", "Meridian", "Neptune", "Orion", "Phoenix", "Quartz",
    "Sapphire", "Titan", "Vega", "Willow", "Zephyr", "Atlas", "Beacon", "Cobalt", "Delta", "Ember",
    "Fjord", "Harbour", "Indigo", "Kestrel", "Lumen", "Mistral", "Nova",
];

/// Kinds of matter, for workspace names (`Globex - Acquisition Financing (10234)`).
pub(crate) const MATTER_TYPES: &[&str] = &[
    "Acquisition Financing",
    "Commercial Litigation",
    "Employment Advice",
    "Real Estate Portfolio",
    "Regulatory Investigation",
    "Joint Venture",
    "Patent Dispute",
    "Restructuring",
    "Tax Structuring",
    "Merger Control",
    "Supply Agreements",
    "Data Protection Review",
    "Share Purchase",
    "Arbitration",
];

/// Names for groups nobody belongs to any more.
pub(crate) const EMPTY_GROUP_NAMES: &[&str] = &[
    "Archive - Closed Matters",
    "Legacy DMS Migration",
    "Former Employees",
    "Pilot - Mobile Access",
    "Retired Workspace Owners",
    "Test Group",
];

/// The ASCII spelling of one letter, for the letters the pools above use (and a few more).
fn fold_char(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ą' | 'ă' => "a",
        'Á' | 'À' | 'Â' | 'Ä' | 'Ã' | 'Å' | 'Ą' | 'Ă' => "A",
        'é' | 'è' | 'ê' | 'ë' | 'ę' | 'ě' | 'ễ' | 'ế' | 'ệ' => "e",
        'É' | 'È' | 'Ê' | 'Ë' | 'Ę' | 'Ě' => "E",
        'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
        'Í' | 'Ì' | 'Î' | 'Ï' | 'İ' => "I",
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'ơ' | 'ő' => "o",
        'Ó' | 'Ò' | 'Ô' | 'Ö' | 'Õ' | 'Ø' | 'Ơ' | 'Ő' => "O",
        'ú' | 'ù' | 'û' | 'ü' | 'ư' | 'ů' | 'ű' => "u",
        'Ú' | 'Ù' | 'Û' | 'Ü' | 'Ư' | 'Ů' | 'Ű' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' => "Y",
        'ç' | 'ć' | 'č' => "c",
        'Ç' | 'Ć' | 'Č' => "C",
        'ñ' | 'ń' | 'ň' => "n",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'ł' => "l",
        'Ł' => "L",
        'ś' | 'š' | 'ş' => "s",
        'Ś' | 'Š' | 'Ş' => "S",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ř' => "r",
        'Ř' => "R",
        'ğ' => "g",
        'Ğ' => "G",
        'đ' => "d",
        'Đ' => "D",
        'ť' => "t",
        'Ť' => "T",
        'ß' => "ss",
        'æ' => "ae",
        'Æ' => "AE",
        'ị' => "i",
        'ầ' | 'ạ' => "a",
        _ => return None,
    })
}

/// The name with its diacritics removed (`José` -> `Jose`, `Weiß` -> `Weiss`), as a directory
/// that only took ASCII would hold it.
pub(crate) fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match fold_char(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    out
}

/// Lowercase ASCII letters and digits only: `Ó Briain` -> `obriain`, `O'Neill` -> `oneill`.
pub(crate) fn slug(name: &str) -> String {
    fold(name)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The plain login of a name: first initial and last name (`jdoe`), at most 20 characters.
pub(crate) fn login_base(first: &str, last: &str) -> String {
    let initial: String = slug(first).chars().take(1).collect();
    let mut login = format!("{initial}{}", slug(last));
    login.truncate(20);
    if login.is_empty() {
        login.push_str("user");
    }
    login
}

/// The local part of a person's email: `john.doe`.
pub(crate) fn email_local(first: &str, last: &str) -> String {
    format!("{}.{}", slug(first), slug(last))
}

/// `JDoe` from `jdoe` (and `JDoe2` from `jdoe2`): the capitalised login some directories keep.
pub(crate) fn capitalised_login(login: &str, last: &str) -> String {
    let last_slug = slug(last);
    let mut out = String::with_capacity(login.len());
    let mut chars = login.chars();
    if let Some(first) = chars.next() {
        out.push(first.to_ascii_uppercase());
    }
    let rest: String = chars.collect();
    if !last_slug.is_empty() && rest.starts_with(&last_slug) {
        let mut tail = rest.chars();
        if let Some(c) = tail.next() {
            out.push(c.to_ascii_uppercase());
        }
        out.extend(tail);
    } else {
        out.push_str(&rest);
    }
    out
}

/// `John.Doe@Acme.com` from `john.doe@acme.com`: each dot-separated word of the local part and
/// the domain's first letter capitalised, as mail clients and HR systems often store it.
pub(crate) fn email_case_variant(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let cap = |w: &str| {
        let mut c = w.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect::<String>(),
            None => String::new(),
        }
    };
    let local: Vec<String> = local.split('.').map(cap).collect();
    if domain.is_empty() {
        local.join(".")
    } else {
        format!("{}@{}", local.join("."), cap(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pooled_name_folds_to_ascii() {
        for name in FIRST_NAMES.iter().chain(LAST_NAMES) {
            assert!(fold(name).is_ascii(), "{name} folds to {}", fold(name));
            assert!(!slug(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn spellings() {
        assert_eq!(fold("José Müller"), "Jose Muller");
        assert_eq!(fold("Weiß"), "Weiss");
        assert_eq!(slug("Ó Briain"), "obriain");
        assert_eq!(login_base("John", "Doe"), "jdoe");
        assert_eq!(login_base("Łukasz", "Nguyễn"), "lnguyen");
        assert_eq!(email_local("Zoë", "O'Neill"), "zoe.oneill");
        assert_eq!(capitalised_login("jdoe", "Doe"), "JDoe");
        assert_eq!(capitalised_login("jdoe2", "Doe"), "JDoe2");
        assert_eq!(email_case_variant("john.doe@acme.com"), "John.Doe@Acme.com");
    }

    #[test]
    fn pools_have_names_with_and_without_diacritics() {
        assert!(FIRST_NAMES.iter().any(|n| !n.is_ascii()));
        assert!(LAST_NAMES.iter().any(|n| !n.is_ascii()));
        assert!(FIRST_NAMES.iter().filter(|n| n.is_ascii()).count() > 50);
    }
}
