-- Clinic records, SQLite dialect. Keep this file in step with ../postgres/0002_clinic.sql.
-- Every table has one shape: an integer id (never reused, AUTOINCREMENT: an event that names
-- "patient 42" keeps meaning that patient), its references as foreign-key columns, `day` (the
-- record's date, for date filters) where it has one, and its other fields as a JSON object in
-- `data`, which carehook-core validates and reads. References restrict deletes: the store
-- refuses to delete a record others still refer to, with a message, before SQL would.

CREATE TABLE clinics (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The seq of the clinic's last bill (BILL-0001 is 1).
    bills_issued INTEGER NOT NULL DEFAULT 0,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE doctors (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    clinic_id    INTEGER NOT NULL REFERENCES clinics (id),
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX doctors_by_clinic ON doctors (clinic_id, id);

CREATE TABLE receptionists (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    clinic_id    INTEGER NOT NULL REFERENCES clinics (id),
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX receptionists_by_clinic ON receptionists (clinic_id, id);

CREATE TABLE patients (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    clinic_id    INTEGER NOT NULL REFERENCES clinics (id),
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX patients_by_clinic ON patients (clinic_id, id);

CREATE TABLE appointments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    clinic_id    INTEGER NOT NULL REFERENCES clinics (id),
    doctor_id    INTEGER NOT NULL REFERENCES doctors (id),
    patient_id   INTEGER NOT NULL REFERENCES patients (id),
    day          TEXT,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX appointments_by_clinic ON appointments (clinic_id, id);
CREATE INDEX appointments_by_doctor ON appointments (doctor_id, id);
CREATE INDEX appointments_by_patient ON appointments (patient_id, id);
CREATE INDEX appointments_by_day ON appointments (day, id);

CREATE TABLE encounters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    clinic_id    INTEGER NOT NULL REFERENCES clinics (id),
    doctor_id    INTEGER NOT NULL REFERENCES doctors (id),
    patient_id   INTEGER NOT NULL REFERENCES patients (id),
    appointment_id INTEGER REFERENCES appointments (id),
    day          TEXT,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX encounters_by_clinic ON encounters (clinic_id, id);
CREATE INDEX encounters_by_doctor ON encounters (doctor_id, id);
CREATE INDEX encounters_by_patient ON encounters (patient_id, id);
CREATE INDEX encounters_by_appointment ON encounters (appointment_id, id);
CREATE INDEX encounters_by_day ON encounters (day, id);

CREATE TABLE medical_records (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    encounter_id INTEGER NOT NULL REFERENCES encounters (id),
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX medical_records_by_encounter ON medical_records (encounter_id, id);

CREATE TABLE prescriptions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    encounter_id INTEGER NOT NULL REFERENCES encounters (id),
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX prescriptions_by_encounter ON prescriptions (encounter_id, id);

CREATE TABLE bills (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    encounter_id INTEGER NOT NULL REFERENCES encounters (id),
    -- The bill's number within its clinic, from clinics.bills_issued.
    seq          INTEGER NOT NULL,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX bills_by_encounter ON bills (encounter_id, id);

CREATE TABLE payments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    bill_id      INTEGER NOT NULL REFERENCES bills (id),
    day          TEXT,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX payments_by_bill ON payments (bill_id, id);
CREATE INDEX payments_by_day ON payments (day, id);
