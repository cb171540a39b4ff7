"""The words and codes the demo network is made of.

Everything here is synthetic or public: invented person names, real payer and
place names, real billable ICD-10-CM codes (checked against the shipped code set
by the tests), and free text written so that no scope-of-practice pattern
(DOC-011) and every medical-exercise pattern where one is needed (REF-007)
behaves as the clean network requires.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_NAMES = (
    "Mary", "Patricia", "Linda", "Barbara", "Elizabeth", "Jennifer", "Maria", "Susan",
    "Margaret", "Dorothy", "Lisa", "Nancy", "Karen", "Betty", "Helen", "Sandra", "Donna",
    "Carol", "Ruth", "Sharon", "Michelle", "Laura", "Sarah", "Kimberly", "Deborah",
    "Jessica", "Shirley", "Cynthia", "Angela", "Melissa", "Brenda", "Amy", "Anna", "Rebecca",
    "Virginia", "Kathleen", "Pamela", "Martha", "Debra", "Amanda", "James", "John", "Robert",
    "Michael", "William", "David", "Richard", "Charles", "Joseph", "Thomas", "Christopher",
    "Daniel", "Paul", "Mark", "Donald", "George", "Kenneth", "Steven", "Edward", "Brian",
    "Ronald", "Anthony", "Kevin", "Jason", "Matthew", "Gary", "Timothy", "Jose", "Larry",
    "Jeffrey", "Frank", "Scott", "Eric", "Stephen", "Andrew", "Raymond", "Gregory", "Joshua",
    "Jerry", "Dennis", "Walter", "Patrick", "Peter", "Harold", "Douglas", "Henry", "Carl",
    "Arthur", "Ryan", "Roger", "Aisha", "Mei", "Priya", "Keiko", "Ana", "Fatima", "Ngozi",
    "Wei", "Rahul", "Hiroshi",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins",
    "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez",
    "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos",
    "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James",
    "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Okafor",
)  # fmt: skip

PLACES = (
    "Brookline", "Newton", "Cambridge", "Quincy", "Framingham", "Worcester", "Lowell",
    "Salem", "Plymouth", "Concord", "Nashua", "Portland", "Burlington", "Hartford",
    "Stamford", "Providence", "Albany", "Ithaca", "Rochester", "Buffalo", "Princeton",
    "Hoboken", "Scranton", "Allentown", "Lancaster", "Annapolis", "Bethesda", "Arlington",
    "Richmond", "Raleigh", "Durham", "Asheville", "Charleston", "Savannah", "Tampa",
    "Sarasota", "Naples", "Orlando", "Naperville", "Evanston", "Madison", "Ann Arbor",
    "Columbus", "Dayton", "Louisville", "Nashville", "Memphis", "St. Louis", "Omaha",
    "Wichita", "Tulsa", "Austin", "Plano", "Boulder", "Fort Collins", "Santa Fe",
    "Scottsdale", "Tucson", "Boise", "Spokane", "Tacoma", "Eugene", "Sacramento",
    "Pasadena", "Irvine", "San Diego", "Reno", "Provo", "Billings", "Fargo",
)  # fmt: skip

PRACTICE_SUFFIXES = (
    "Medical Exercise",
    "Medical Exercise Center",
    "MET Studio",
    "Strength & Recovery",
    "Medical Fitness",
)

# IANA zones of the practices; None leaves the column NULL (the default zone applies).
TIMEZONES = (
    "America/New_York",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    None,
)
DEFAULT_TIMEZONE = "America/New_York"

# Staff who do not deliver sessions in the clean network (front desk, trainers, a PT).
OTHER_STAFF_CREDENTIALS = ("CPT", "PTA", "ADMIN", "ATC")

# Referring provider credentials and their share of the pool.
REFERRER_CREDENTIALS = (("MD", 0.50), ("DO", 0.15), ("DPM", 0.08), ("NP", 0.15), ("PA", 0.12))
# Providers in the pool who never refer in the clean network.
NON_REFERRER_CREDENTIALS = ("DC", "PT")

# Payers by plan type. Only the billable plan types carry claims in the clean network.
PAYERS: dict[str, tuple[str, ...]] = {
    "commercial": (
        "Aetna", "Cigna", "UnitedHealthcare", "Blue Cross Blue Shield", "Anthem Blue Cross",
        "Humana", "Highmark", "Harvard Pilgrim", "Kaiser Permanente", "Oscar Health",
        "Tufts Health Plan", "Independence Blue Cross", "Florida Blue", "Premera Blue Cross",
    ),
    "workers_comp": (
        "The Hartford Workers' Compensation", "Liberty Mutual Workers' Comp",
        "Travelers Workers Compensation",
    ),
    "auto": ("GEICO Auto Medical", "State Farm Auto Medical", "Progressive Auto PIP"),
    "other": ("Employer Health Benefit Plan", "Union Health Fund"),
    "medicare": ("Medicare Part B",),
    "medicare_advantage": ("Humana Medicare Advantage", "AARP Medicare Advantage"),
    "medicaid": ("MassHealth", "Medi-Cal"),
    "self_pay": ("Self-pay",),
}  # fmt: skip
BILLABLE_PLAN_TYPES = ("commercial", "workers_comp", "auto", "other")


@dataclass(frozen=True)
class Condition:
    """A qualifying condition the demo uses, with the outcome measures that suit it."""

    category: str
    icd10_code: str
    description: str
    instruments: tuple[str, str, str]


# Codes billable since the first ICD-10-CM release and still billable (tests check is_leaf),
# so a network generated for an earlier as-of date is judged clean by any release.
PRIMARY_CONDITIONS = (
    Condition("post_surgical", "Z96.651", "Right total knee replacement", ("TUG", "LEFS", "PAIN_NRS")),
    Condition("post_surgical", "Z96.652", "Left total knee replacement", ("TUG", "LEFS", "PAIN_NRS")),
    Condition("post_surgical", "Z96.641", "Right total hip replacement", ("TUG", "SIX_MWT", "LEFS")),
    Condition("post_surgical", "Z96.642", "Left total hip replacement", ("TUG", "SIX_MWT", "LEFS")),
    Condition("post_surgical", "Z96.611", "Right shoulder arthroplasty", ("GRIP", "PAIN_NRS", "CHAIR_STAND_30S")),
    Condition("post_surgical", "Z98.1", "Lumbar fusion", ("ODI", "PAIN_NRS", "SIX_MWT")),
    Condition("post_surgical", "Z95.1", "Coronary bypass graft, cardiac rehab completed", ("SIX_MWT", "CHAIR_STAND_30S", "GRIP")),
    Condition("trauma", "S72.001D", "Right hip fracture, healing", ("TUG", "BERG", "SIX_MWT")),
    Condition("trauma", "S82.101D", "Right tibial plateau fracture, healing", ("TUG", "LEFS", "PAIN_NRS")),
    Condition("trauma", "S83.511D", "Right ACL sprain", ("LEFS", "PAIN_NRS", "CHAIR_STAND_30S")),
    Condition("trauma", "S42.201D", "Right proximal humerus fracture, healing", ("GRIP", "PAIN_NRS", "CHAIR_STAND_30S")),
    Condition("trauma", "S52.501D", "Right distal radius fracture, healing", ("GRIP", "PAIN_NRS", "SIX_MWT")),
    Condition("trauma", "S32.000D", "Lumbar compression fracture, healing", ("ODI", "PAIN_NRS", "TUG")),
    Condition("chronic", "M17.11", "Osteoarthritis of the right knee", ("TUG", "LEFS", "PAIN_NRS")),
    Condition("chronic", "M17.0", "Osteoarthritis of both knees", ("CHAIR_STAND_30S", "LEFS", "PAIN_NRS")),
    Condition("chronic", "M16.11", "Osteoarthritis of the right hip", ("TUG", "SIX_MWT", "PAIN_NRS")),
    Condition("chronic", "M48.061", "Lumbar spinal stenosis", ("ODI", "SIX_MWT", "PAIN_NRS")),
    Condition("chronic", "M47.816", "Lumbar spondylosis", ("ODI", "PAIN_NRS", "CHAIR_STAND_30S")),
    Condition("chronic", "M81.0", "Osteoporosis", ("BERG", "TUG", "GRIP")),
    Condition("chronic", "E11.40", "Type 2 diabetes with neuropathy", ("BERG", "TUG", "SIX_MWT")),
    Condition("chronic", "I69.351", "Right-sided weakness after a stroke", ("BERG", "TUG", "GRIP")),
    Condition("chronic", "J44.9", "COPD", ("SIX_MWT", "CHAIR_STAND_30S", "GRIP")),
    Condition("chronic", "M06.9", "Rheumatoid arthritis", ("GRIP", "PAIN_NRS", "TUG")),
)  # fmt: skip

# Second conditions some clients also have (billed as diagnosis B).
SECONDARY_CONDITIONS = (
    Condition("other", "I10", "High blood pressure", ("TUG", "GRIP", "SIX_MWT")),
    Condition("other", "R26.81", "Unsteady on feet", ("BERG", "TUG", "SIX_MWT")),
    Condition("other", "M62.81", "Generalised muscle weakness", ("GRIP", "CHAIR_STAND_30S", "TUG")),
    Condition("chronic", "E11.9", "Type 2 diabetes", ("SIX_MWT", "CHAIR_STAND_30S", "GRIP")),
)  # fmt: skip

# A billable code that the demo's clients never carry (COD-004 defect).
UNDOCUMENTED_CODE = "M25.561"
# A category header that needs more characters: not billable since 2021-10-01 (COD-003).
HEADER_CODE = "M54.5"


@dataclass(frozen=True)
class Instrument:
    """An outcome measure: baseline range, improvement per assessment, bounds and unit."""

    name: str
    low: float
    high: float
    step_low: float
    step_high: float
    floor: float
    ceiling: float
    unit: str
    decimals: int
    lower_is_better: bool


INSTRUMENTS = {
    i.name: i
    for i in (
        Instrument("TUG", 12.0, 22.0, 0.8, 1.6, 5.0, 60.0, "s", 1, True),
        Instrument("PAIN_NRS", 4, 8, 1, 1, 0, 10, "0-10", 0, True),
        Instrument("ODI", 26, 50, 3, 5, 0, 100, "%", 0, True),
        Instrument("GRIP", 14.0, 30.0, 0.8, 1.5, 0.0, 70.0, "kg", 1, False),
        Instrument("CHAIR_STAND_30S", 5, 10, 1, 2, 0, 40, "count", 0, False),
        Instrument("SIX_MWT", 220, 420, 15, 30, 0, 800, "m", 0, False),
        Instrument("BERG", 30, 44, 2, 3, 0, 56, "points", 0, False),
        Instrument("LEFS", 22, 48, 3, 6, 0, 80, "points", 0, False),
    )
}
INSTRUMENT_NAMES = tuple(INSTRUMENTS)

EXERCISES = (
    "Leg press", "Sit-to-stand", "Step-ups", "Mini squats", "Seated row", "Chest press",
    "Farmer carry", "Single-leg balance", "Tandem walk", "Glute bridge",
    "Side-lying hip abduction", "Heel raises", "Treadmill walking", "Recumbent bike",
    "Band pull-aparts", "Wall push-ups", "Bird dog", "Dead bug", "Lateral band walk",
    "Suitcase deadlift",
)  # fmt: skip
EXERCISE_INTENSITIES = (
    "RPE 5", "RPE 6", "RPE 7", "5 kg", "10 kg", "15 kg", "20 kg", "Level 3", "Level 5",
    "Bodyweight", "Red band", "Green band",
)  # fmt: skip
POE_INTENSITIES = (
    "Light to moderate, RPE 4-5",
    "Moderate, RPE 5-6",
    "Moderate to vigorous, RPE 6-7",
)
PROGRESSIONS = (
    "Add 5-10% load every two weeks when all sets are completed with good form",
    "Advance from supported to unsupported balance tasks, then add head turns",
    "Increase walking time by 5 minutes a week, then add incline",
    "Add one set per exercise every two weeks, then increase load",
)
SERVICES_REQUESTED = (
    "Medical exercise training 2-3x/week",
    "Medical Exercise Training (MET) per evaluation",
    "Evaluate and provide medical exercise",
    "MET program: strength, balance and endurance",
    "Medical exercise with a certified MES",
)
INITIAL_DEFICITS = (
    "Difficulty climbing stairs; reduced walking endurance",
    "Unable to rise from a chair without using arms",
    "Limited overhead reach; cannot lift groceries to a shelf",
    "Impaired balance when turning; fear of falling",
    "Walking tolerance limited to 10 minutes",
    "Difficulty carrying loads over 5 kg",
)
REASSESSMENT_DEFICITS = (
    "Residual: stairs still need a rail",
    "Residual: chair rise needs one hand",
    "Residual: balance reduced on uneven ground",
    "Residual: walking tolerance 20 minutes",
)
DISCHARGE_DEFICITS = ("Minimal residual limitation; independent with home program",)
ASSESSMENT_NOTES = (
    "Baseline measures recorded; client motivated",
    "Measures improved since the last assessment",
    "Client reports better confidence on stairs",
    "Home program reviewed",
)
CLIENT_RESPONSES = (
    "Tolerated session well",
    "Mild fatigue, no increase in pain",
    "Good form; load progressed",
    "Reported soreness 2/10 after the session",
    "Needed rest breaks; completed all sets",
)
SESSION_NOTES = (
    "Progressed leg press by 5 kg",
    "Focus on balance and gait",
    "Added step-ups to the circuit",
    "Warm-up on the bike for 8 minutes",
    "Client walked to the session from the car park without a cane",
)
MISSED_SESSION_NOTES = (
    "Client called to cancel",
    "Family commitment",
    "Weather",
    "Client did not arrive",
)
SHORT_GOALS = (
    "Walk to the mailbox and back without resting",
    "Rise from a chair five times without using the arms",
    "Stand on one leg for 10 seconds",
    "Carry a laundry basket up one flight of stairs",
)
LONG_GOALS = (
    "Return to 30 minutes of continuous walking",
    "Climb two flights of stairs without a rail",
    "Lift a 10 kg bag from floor to counter",
    "Return to gardening for one hour",
)
DISCHARGE_DISCIPLINES = (("PT", 0.65), ("OT", 0.10), ("DC", 0.25))
DISCHARGE_REASONS = ("max_benefit", "goals_met", "benefits_exhausted", "other")

# Timed medical exercise codes and the charge per unit.
CPT_CODES = ("97110", "97112", "97530")
FEES = (42.0, 46.0, 48.0)
