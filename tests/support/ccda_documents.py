"""Synthetic C-CDA documents for tests (no real person): a small CCD whose parts can be
swapped, made bad, or made hostile.

Provenance: written for these tests after the C-CDA R2.1 US Realm Header and the
Problems, Results and Social History section templates (HL7 C-CDA R2.1, 2015); the
values are invented.
"""

from __future__ import annotations

MRN_OID = "1.3.6.1.4.1.99999.1"  # an invented assigning authority

PROBLEMS = """
<component><section>
  <templateId root="2.16.840.1.113883.10.20.22.2.5.1" extension="2015-08-01"/>
  <code code="11450-4" codeSystem="2.16.840.1.113883.6.1"/>
  <title>Problems</title><text>Asthma</text>
  <entry><act classCode="ACT" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.3" extension="2015-08-01"/>
    <id root="2.16.840.1.113883.19.5" extension="problem-act-1"/>
    <code code="CONC" codeSystem="2.16.840.1.113883.5.6"/>
    <statusCode code="active"/>
    <effectiveTime><low value="20240101"/></effectiveTime>
    <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN">
      <templateId root="2.16.840.1.113883.10.20.22.4.4" extension="2015-08-01"/>
      <id root="2.16.840.1.113883.19.5" extension="problem-1"/>
      <code code="55607006" codeSystem="2.16.840.1.113883.6.96"/>
      <statusCode code="completed"/>
      <effectiveTime><low value="20240101"/></effectiveTime>
      <value xsi:type="CD" code="195967001" codeSystem="2.16.840.1.113883.6.96"
        displayName="Asthma"/>
    </observation></entryRelationship>
  </act></entry>
</section></component>"""

RESULTS = """
<component><section>
  <templateId root="2.16.840.1.113883.10.20.22.2.3.1" extension="2015-08-01"/>
  <code code="30954-2" codeSystem="2.16.840.1.113883.6.1"/>
  <title>Results</title><text>Glucose 95 mg/dL</text>
  <entry typeCode="DRIV"><organizer classCode="BATTERY" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.1" extension="2015-08-01"/>
    <id root="2.16.840.1.113883.19.5" extension="panel-1"/>
    <code code="24323-8" codeSystem="2.16.840.1.113883.6.1" displayName="Metabolic panel"/>
    <statusCode code="completed"/>
    <effectiveTime value="20240102103000-0500"/>
    <component><observation classCode="OBS" moodCode="EVN">
      <templateId root="2.16.840.1.113883.10.20.22.4.2" extension="2015-08-01"/>
      <id root="2.16.840.1.113883.19.5" extension="glucose-1"/>
      <code code="2345-7" codeSystem="2.16.840.1.113883.6.1" displayName="Glucose"/>
      <statusCode code="completed"/>
      <effectiveTime value="20240102103000-0500"/>
      <value xsi:type="PQ" value="95" unit="mg/dL"/>
    </observation></component>
  </organizer></entry>
</section></component>"""

# A Smoking Status Observation without an id breaks a SHALL: the library refuses it.
SMOKING_WITHOUT_ID = """
<component><section>
  <templateId root="2.16.840.1.113883.10.20.22.2.17" extension="2015-08-01"/>
  <code code="29762-2" codeSystem="2.16.840.1.113883.6.1"/>
  <title>Social History</title><text>Never smoker</text>
  <entry><observation classCode="OBS" moodCode="EVN">
    <templateId root="2.16.840.1.113883.10.20.22.4.78" extension="2014-06-09"/>
    <code code="72166-2" codeSystem="2.16.840.1.113883.6.1"/>
    <statusCode code="completed"/>
    <effectiveTime value="20240101"/>
    <value xsi:type="CD" code="266919005" codeSystem="2.16.840.1.113883.6.96"/>
  </observation></entry>
</section></component>"""


def document(
    sections: str = PROBLEMS + RESULTS,
    *,
    mrn: str = "MRN-1001",
    family: str = "Testpatient",
    body: str | None = None,
    encoding: str = "UTF-8",
    set_id: str = "doc-series-1",
) -> str:
    """A CCD with these sections (or this whole ``body`` component)."""
    body = (
        body
        if body is not None
        else f"<component><structuredBody>{sections}</structuredBody></component>"
    )
    return f"""<?xml version="1.0" encoding="{encoding}"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="US"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.10.20.22.1.1" extension="2015-08-01"/>
  <templateId root="2.16.840.1.113883.10.20.22.1.2" extension="2015-08-01"/>
  <id root="2.16.840.1.113883.19.5" extension="doc-{set_id}-v1"/>
  <code code="34133-9" codeSystem="2.16.840.1.113883.6.1"
    displayName="Summarization of Episode Note"/>
  <title>Continuity of Care Document</title>
  <effectiveTime value="20240103120000-0500"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="en-US"/>
  <setId root="2.16.840.1.113883.19.5" extension="{set_id}"/>
  <versionNumber value="1"/>
  <recordTarget><patientRole>
    <id root="{MRN_OID}" extension="{mrn}"/>
    <addr use="HP"><streetAddressLine>1 Test Street</streetAddressLine><city>Testville</city>
      <state>MA</state><postalCode>02100</postalCode><country>US</country></addr>
    <telecom use="HP" value="tel:+1-555-555-0100"/>
    <patient>
      <name use="L"><given>Alex</given><family>{family}</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19800101"/>
    </patient>
  </patientRole></recordTarget>
  <author>
    <time value="20240103120000-0500"/>
    <assignedAuthor>
      <id root="2.16.840.1.113883.4.6" extension="1234567893"/>
      <addr><streetAddressLine>2 Clinic Road</streetAddressLine><city>Testville</city>
      <state>MA</state><postalCode>02100</postalCode></addr>
      <telecom use="WP" value="tel:+1-555-555-0101"/>
      <assignedPerson><name><given>Sam</given><family>Doctor</family></name></assignedPerson>
    </assignedAuthor>
  </author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="2.16.840.1.113883.19.5"/>
    <name>Test Clinic</name>
    <telecom use="WP" value="tel:+1-555-555-0102"/>
    <addr><streetAddressLine>2 Clinic Road</streetAddressLine><city>Testville</city>
      <state>MA</state><postalCode>02100</postalCode></addr>
  </representedCustodianOrganization></assignedCustodian></custodian>
  {body}
</ClinicalDocument>
"""


def unstructured(media: str = "application/pdf", content: str = "JVBERi0xLjQK") -> str:
    """An unstructured document with inline base64 content (``%PDF-1.4`` here)."""
    return document(
        body=f"""<component><nonXMLBody>
  <text mediaType="{media}" representation="B64">{content}</text>
</nonXMLBody></component>"""
    )
